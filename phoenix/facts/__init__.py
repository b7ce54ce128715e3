"""Facts of a server, gathered over SSH: its files, packages and services.

A baseline is the facts of a pristine server booted from an image, gathered by this same code; drift
is the difference between a baseline and the facts of a live server. Each area of facts is a module
with its shell command and a pure parser of that command's output.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from phoenix.facts import files, packages, services
from phoenix.facts.files import FileFact
from phoenix.facts.packages import Package
from phoenix.facts.runner import Runner
from phoenix.facts.services import Service

__all__ = ["Facts", "FileFact", "Package", "Runner", "Service", "gather"]

VERSION = 1  # of the to_dict() layout; from_dict() refuses another


@dataclass(frozen=True)
class Facts:
    files: dict[str, FileFact]
    packages: dict[str, Package]
    services: dict[str, Service]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy: every fact as a plain dict, keyed as here."""
        return {
            "version": VERSION,
            "files": {path: asdict(f) for path, f in self.files.items()},
            "packages": {key: asdict(p) for key, p in self.packages.items()},
            "services": {name: asdict(s) for name, s in self.services.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Facts:
        """The inverse of to_dict(); raise ValueError on another layout."""
        if data.get("version") != VERSION:
            raise ValueError(f"facts layout version {data.get('version')!r}, expected {VERSION}")
        try:
            return cls(
                files={path: FileFact(**f) for path, f in data["files"].items()},
                packages={key: Package(**p) for key, p in data["packages"].items()},
                services={name: Service(**s) for name, s in data["services"].items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a facts record: {exc}") from exc

    def summary(self) -> dict[str, int]:
        return {
            "files": len(self.files),
            "hashed": sum(1 for f in self.files.values() if f.sha256 is not None),
            "packages": len(self.packages),
            "services": len(self.services),
        }


def gather(session: Runner, roots: Sequence[str], timeout: float = 120) -> Facts:
    """Gather the facts of the server behind `session`: three commands, `timeout` seconds in all.

    Roots that do not exist on the server are skipped. A command that fails raises CommandError.
    """
    deadline = time.monotonic() + timeout
    found_files = files.gather(session, roots, timeout=_left(deadline))
    found_packages = packages.gather(session, timeout=_left(deadline))
    found_services = services.gather(session, timeout=_left(deadline))
    return Facts(found_files, found_packages, found_services)


def _left(deadline: float) -> float:
    """Seconds left before `deadline`, at least one: a late step still gets a chance to answer."""
    return max(deadline - time.monotonic(), 1.0)

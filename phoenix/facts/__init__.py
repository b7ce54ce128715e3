"""Facts of a server, gathered over SSH: its files, packages, services and inventory.

A baseline is the facts of a pristine server booted from an image, gathered by this same code; drift
is the difference between a baseline and the facts of a live server. Each area of facts is a module
with its shell command and a pure parser of that command's output; `script` joins the commands into
one script, so that gathering everything is one round trip.

Files, packages and services are required: if their section fails, gather() raises CommandError.
The inventory (users, groups, ssh_keys, cron, timers, ports, sysctl: the facts of `registry`, each
declared there once) is optional: a section that fails (its tool is missing, as `ss` without
iproute2 or `systemctl` without systemd) gives an empty fact, `{}`; one whose output cannot be read
gives None, "not gathered", as do records written before these facts existed (layout version 1).
Drift skips a fact that is None on either side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from phoenix.facts import files, packages, script, services
from phoenix.facts.cache import ScanCache
from phoenix.facts.files import FileFact, HashCache
from phoenix.facts.packages import Package
from phoenix.facts.ports import Listener
from phoenix.facts.registry import (
    CRON,
    GROUPS,
    PORTS,
    REGISTRY,
    SSH_KEYS,
    SYSCTL,
    TIMERS,
    USERS,
    Fact,
    Registry,
)
from phoenix.facts.runner import Runner, command_error, unreadable
from phoenix.facts.script import Section
from phoenix.facts.services import Service
from phoenix.facts.sysctl import SYSCTL_KEYS
from phoenix.facts.users import Group, User
from phoenix.host.process import CommandResult

__all__ = [
    "REGISTRY",
    "SYSCTL_KEYS",
    "Fact",
    "Facts",
    "FileFact",
    "Group",
    "HashCache",
    "Listener",
    "Package",
    "Registry",
    "Runner",
    "ScanCache",
    "Service",
    "User",
    "gather",
]

VERSION = 2  # of the to_dict() layout; from_dict() reads this one and version 1
SETUID_BITS = 0o6000

K = TypeVar("K")
V = TypeVar("V")

Inventory = dict[Fact[Any], dict[str, Any] | None]


@dataclass(frozen=True, init=False)
class Facts:
    """The facts of a server: the required ones, and the optional ones of a registry.

    `Facts(files, packages, services, users=..., sysctl=...)`: the optional facts of REGISTRY by
    name, None (not gathered) when left out; or `inventory={fact: ...}` for those of another
    registry. `facts.get(fact)`, or `facts.users`, `facts.sysctl`... for those of REGISTRY.
    """

    files: dict[str, FileFact]
    packages: dict[str, Package]
    services: dict[str, Service]
    # each fact of a registry -> key -> value; None: not gathered (a version 1 record, or output
    # phoenix could not read)
    inventory: Inventory

    def __init__(
        self,
        files: dict[str, FileFact],
        packages: dict[str, Package],
        services: dict[str, Service],
        inventory: Mapping[Fact[Any], dict[str, Any] | None] | None = None,
        **named: dict[str, Any] | None,
    ) -> None:
        found: Inventory = dict(inventory) if inventory is not None else dict.fromkeys(REGISTRY)
        by_name = {fact.name: fact for fact in found}
        for name, value in named.items():
            if name not in by_name:
                raise TypeError(f"Facts() got an unexpected keyword argument {name!r}")
            found[by_name[name]] = value
        object.__setattr__(self, "files", files)
        object.__setattr__(self, "packages", packages)
        object.__setattr__(self, "services", services)
        object.__setattr__(self, "inventory", found)

    def get(self, fact: Fact[V]) -> dict[str, V] | None:
        """The values of an optional fact; None if not gathered (or not of this registry)."""
        return self.inventory.get(fact)

    @property
    def users(self) -> dict[str, User] | None:
        return self.get(USERS)

    @property
    def groups(self) -> dict[str, Group] | None:
        return self.get(GROUPS)

    @property
    def ssh_keys(self) -> dict[str, tuple[str, ...]] | None:  # user -> authorized key lines
        return self.get(SSH_KEYS)

    @property
    def cron(self) -> dict[str, tuple[str, ...]] | None:  # crontab path -> entries
        return self.get(CRON)

    @property
    def timers(self) -> dict[str, str] | None:  # timer unit -> unit file state
        return self.get(TIMERS)

    @property
    def ports(self) -> dict[str, Listener] | None:  # "tcp/0.0.0.0:22" -> listener
        return self.get(PORTS)

    @property
    def sysctl(self) -> dict[str, str] | None:  # key of SYSCTL_KEYS -> value
        return self.get(SYSCTL)

    def setuid(self) -> dict[str, str]:
        """Path -> mode of every regular file with the setuid or setgid bit (from `files`)."""
        return {
            path: fact.mode
            for path, fact in self.files.items()
            if fact.type == "f" and int(fact.mode, 8) & SETUID_BITS
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy: every fact as plain data, keyed as here; None stays None."""
        return {
            "version": VERSION,
            "files": {path: asdict(f) for path, f in self.files.items()},
            "packages": {key: asdict(p) for key, p in self.packages.items()},
            "services": {name: asdict(s) for name, s in self.services.items()},
            **{fact.name: fact.to_plain(found) for fact, found in self.inventory.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], registry: Registry = REGISTRY) -> Facts:
        """The inverse of to_dict(), which also reads version 1; raise ValueError on another.

        A version 2 record must hold every fact of `registry`, None or a mapping; a version 1
        record holds none of them: they are not gathered.
        """
        version = data.get("version")
        if version not in (1, VERSION):
            raise ValueError(f"facts layout version {version!r}, expected 1 or {VERSION}")
        try:
            inventory: Inventory = {
                fact: None if version == 1 else fact.from_plain(data[fact.name])
                for fact in registry
            }
            return cls(
                files={path: FileFact(**f) for path, f in data["files"].items()},
                packages={key: Package(**p) for key, p in data["packages"].items()},
                services={name: Service(**s) for name, s in data["services"].items()},
                inventory=inventory,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a facts record: {exc}") from exc

    def summary(self) -> dict[str, int]:
        """How many of each fact; the ones not gathered are left out."""
        counts = {
            "files": len(self.files),
            "hashed": sum(1 for f in self.files.values() if f.sha256 is not None),
            "setuid": len(self.setuid()),
            "packages": len(self.packages),
            "services": len(self.services),
        }
        for fact, found in self.inventory.items():
            if found is not None:
                counts[fact.name] = len(found)
        return counts


def gather(
    session: Runner,
    roots: Sequence[str],
    timeout: float = 120,
    cache: ScanCache | None = None,
    registry: Registry = REGISTRY,
) -> Facts:
    """Gather the facts of the server behind `session`: one run of one script, `timeout` seconds.

    Roots that do not exist on the server are skipped. If the script, or a section of files,
    packages or services fails, raise CommandError; see the module for the optional facts, those
    of `registry`. With a `cache` (see facts.cache), files known unchanged are not hashed again,
    the unit file states are not asked of systemd again while its unit directories are unchanged,
    and the cache is brought up to date.
    """
    run = script.of(registry)
    stdin = cache.files.payload() if cache else b""
    known = (cache.units if cache else None) or ("", "")
    roots = files.normalize(roots)
    result = session.run(run.command, *known, *roots, timeout=timeout, stdin=stdin)
    try:
        sections = run.split(result.stdout, result.stderr)
    except ValueError as exc:
        if result.rc != 0:
            stderr = script.without_markers(result.stderr)
            raise command_error(session, script.LABEL, result.rc, stderr) from exc
        raise unreadable(session, script.LABEL, exc) from exc
    if cache is not None:
        cache.units = _units(sections)
    return Facts(
        files=files.read(session, _result(sections["files"]), cache.files if cache else None).files,
        packages=packages.read(session, _result(sections["packages"])),
        services=services.read(session, _result(sections["services"])),
        inventory={fact: _optional(sections[fact.name], fact.parse) for fact in registry},
    )


def _units(sections: dict[str, Section]) -> tuple[str, str] | None:
    """What the script used as `systemctl list-unit-files`, with its fingerprint, if it worked."""
    if script.UNITS not in sections:
        return None
    fingerprint, _, text = sections[script.UNITS].stdout.partition("\n")
    usable = sections["services"].rc == 0 and len(fingerprint) == 32 and text.strip()
    return (fingerprint, text) if usable else None


def _result(section: Section) -> CommandResult:
    return CommandResult(section.rc, section.stdout, section.stderr)


def _optional(section: Section, parse: Callable[[str], dict[K, V]]) -> dict[K, V] | None:
    """The fact of an optional section: empty if it failed, None if its output is unreadable."""
    if section.rc != 0:
        return {}
    try:
        return parse(section.stdout)
    except ValueError:
        return None

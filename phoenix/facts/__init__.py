"""Facts of a server, gathered over SSH: its files, packages, services and inventory.

A baseline is the facts of a pristine server booted from an image, gathered by this same code; drift
is the difference between a baseline and the facts of a live server. Each area of facts is a module
with its shell command and a pure parser of that command's output; `script` joins the commands into
one script, so that gathering everything is one round trip.

Files, packages and services are required: if their section fails, gather() raises CommandError.
The inventory (users, groups, ssh_keys, cron, timers, ports, sysctl) is optional: a section that
fails (its tool is missing, as `ss` without iproute2 or `systemctl` without systemd) gives an empty
fact, `{}`; one whose output cannot be read gives None, "not gathered", as do records written before
these facts existed (layout version 1). Drift skips a fact that is None on either side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from phoenix.facts import cron, files, packages, ports, script, services, ssh_keys, sysctl, users
from phoenix.facts.cache import ScanCache
from phoenix.facts.files import FileFact, HashCache
from phoenix.facts.packages import Package
from phoenix.facts.ports import Listener
from phoenix.facts.runner import Runner, command_error, unreadable
from phoenix.facts.script import Section
from phoenix.facts.services import Service
from phoenix.facts.sysctl import SYSCTL_KEYS
from phoenix.facts.users import Group, User
from phoenix.host.process import CommandResult

__all__ = [
    "SYSCTL_KEYS",
    "Facts",
    "FileFact",
    "Group",
    "HashCache",
    "Listener",
    "Package",
    "Runner",
    "ScanCache",
    "Service",
    "User",
    "gather",
]

VERSION = 2  # of the to_dict() layout; from_dict() reads this one and version 1
OPTIONAL = ("users", "groups", "ssh_keys", "cron", "timers", "ports", "sysctl")
SETUID_BITS = 0o6000

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Facts:
    files: dict[str, FileFact]
    packages: dict[str, Package]
    services: dict[str, Service]
    # None: not gathered (a version 1 record, or output phoenix could not read)
    users: dict[str, User] | None = None
    groups: dict[str, Group] | None = None
    ssh_keys: dict[str, tuple[str, ...]] | None = None  # user -> authorized key lines
    cron: dict[str, tuple[str, ...]] | None = None  # crontab path -> entries
    timers: dict[str, str] | None = None  # timer unit -> unit file state
    ports: dict[str, Listener] | None = None  # "tcp/0.0.0.0:22" -> listener
    sysctl: dict[str, str] | None = None  # key of SYSCTL_KEYS -> value

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
            "users": _plain(self.users, asdict),
            "groups": _plain(self.groups, lambda g: {**asdict(g), "members": list(g.members)}),
            "ssh_keys": _plain(self.ssh_keys, list),
            "cron": _plain(self.cron, list),
            "timers": _plain(self.timers, str),
            "ports": _plain(self.ports, asdict),
            "sysctl": _plain(self.sysctl, str),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Facts:
        """The inverse of to_dict(), which also reads version 1; raise ValueError on another."""
        version = data.get("version")
        if version not in (1, VERSION):
            raise ValueError(f"facts layout version {version!r}, expected 1 or {VERSION}")
        try:
            inventory = {} if version == 1 else _inventory(data)
            return cls(
                files={path: FileFact(**f) for path, f in data["files"].items()},
                packages={key: Package(**p) for key, p in data["packages"].items()},
                services={name: Service(**s) for name, s in data["services"].items()},
                **inventory,
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
        for name in OPTIONAL:
            found: dict[str, Any] | None = getattr(self, name)
            if found is not None:
                counts[name] = len(found)
        return counts


def gather(
    session: Runner, roots: Sequence[str], timeout: float = 120, cache: ScanCache | None = None
) -> Facts:
    """Gather the facts of the server behind `session`: one run of one script, `timeout` seconds.

    Roots that do not exist on the server are skipped. If the script, or a section of files,
    packages or services fails, raise CommandError; see the module for the optional facts.
    With a `cache` (see facts.cache), files known unchanged are not hashed again, the unit file
    states are not asked of systemd again while its unit directories are unchanged, and the cache
    is brought up to date.
    """
    stdin = cache.files.payload() if cache else b""
    known = (cache.units if cache else None) or ("", "")
    roots = files.normalize(roots)
    result = session.run(script.COMMAND, *known, *roots, timeout=timeout, stdin=stdin)
    try:
        sections = script.split(result.stdout, result.stderr)
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
        users=_optional(sections["users"], users.parse),
        groups=_optional(sections["groups"], users.parse_groups),
        ssh_keys=_optional(sections["ssh_keys"], ssh_keys.parse),
        cron=_optional(sections["cron"], cron.parse),
        timers=_optional(sections["timers"], cron.parse_timers),
        ports=_optional(sections["ports"], ports.parse),
        sysctl=_optional(sections["sysctl"], sysctl.parse),
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


def _plain(found: dict[str, V] | None, convert: Callable[[V], Any]) -> dict[str, Any] | None:
    return None if found is None else {key: convert(value) for key, value in found.items()}


def _inventory(data: Mapping[str, Any]) -> dict[str, Any]:
    """The optional facts of a version 2 record: each key must be there, None or a mapping."""
    converters: dict[str, Callable[[Any], Any]] = {
        "users": lambda u: User(**u),
        "groups": lambda g: Group(**{**g, "members": tuple(_strings(g["members"]))}),
        "ssh_keys": lambda keys: tuple(_strings(keys)),
        "cron": lambda entries: tuple(_strings(entries)),
        "timers": _string,
        "ports": lambda p: Listener(**p),
        "sysctl": _string,
    }
    inventory: dict[str, Any] = {}
    for name, convert in converters.items():
        found = data[name]
        inventory[name] = None if found is None else {k: convert(v) for k, v in found.items()}
    return inventory


def _strings(values: Any) -> list[str]:
    if not isinstance(values, list):
        raise TypeError(f"expected a list, found {type(values).__name__}")
    return [_string(v) for v in values]


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, found {type(value).__name__}")
    return value

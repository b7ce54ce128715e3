"""Facts of a server, gathered over SSH: its files, packages, services and inventory.

A baseline is the facts of a pristine server booted from an image, gathered by this same code; drift
is the difference between a baseline and the facts of a live server. Each area of facts is a module
with its shell command and a pure parser of that command's output; `script` joins the commands into
one script, so that gathering everything is one round trip.

Every byte of the output is untrusted: each parser checks every field (see `fields`). One area that
cannot be read never stops the others. Files, packages and services are required, the inventory
(users, groups, ssh_keys, cron, timers, ports, sysctl: the facts of `registry`, each declared there
once) is optional; for all of them alike, gather() records:

- in `Facts.unread` (area -> reason), an area whose section failed (its exit code, the last line
  it wrote on stderr: a tool missing, as `ss` without iproute2, or one that failed);
- in `Facts.invalid` (area -> error), an area whose output is not what its command writes: forged
  by a compromised server, or garbled;

and leaves that area's values empty. Drift compares neither (see `phoenix.drift.diff`), and reports
an area unread or invalid on the live server only. Only output whose framing as a whole is broken
(the sections cannot be told apart) raises: UntrustedOutput. An inventory fact is None, "not
gathered", in records written before it existed (layout version 1), and drift skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from phoenix.errors import UntrustedOutput
from phoenix.facts import capabilities, fields, files, packages, script, services
from phoenix.facts.cache import ScanCache
from phoenix.facts.files import FileFact, HashCache
from phoenix.facts.packages import Package
from phoenix.facts.ports import Listener
from phoenix.facts.registry import (
    CAPABILITIES,
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
from phoenix.facts.runner import Runner, command_error, last_line, server_name
from phoenix.facts.script import Section
from phoenix.facts.services import Service
from phoenix.facts.sysctl import SYSCTL_KEYS
from phoenix.facts.users import Group, User

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

VERSION = 3  # of the to_dict() layout; from_dict() reads this one and versions 1 and 2
REQUIRED = ("files", "packages", "services")
MAX_REASON = 300  # characters of an area's reason (it quotes what the server wrote)
SETUID_BITS = 0o6000

T = TypeVar("T")
V = TypeVar("V")

Inventory = dict[Fact[Any], dict[str, Any] | None]


@dataclass(frozen=True, init=False)
class Facts:
    """The facts of a server: the required ones, and the optional ones of a registry.

    `Facts(files, packages, services, users=..., sysctl=...)`: the optional facts of REGISTRY by
    name, None (not gathered) when left out; or `inventory={fact: ...}` for those of another
    registry. `facts.get(fact)`, or `facts.users`, `facts.sysctl`... for those of REGISTRY.
    `unread` and `invalid` name the areas (required or optional) that could not be read: their
    values are empty and say nothing of the server (see the module).
    """

    files: dict[str, FileFact]
    packages: dict[str, Package]
    services: dict[str, Service]
    # each fact of a registry -> key -> value; None: not gathered (a version 1 record, or output
    # phoenix could not read)
    inventory: Inventory
    unread: dict[str, str]  # area -> why its section failed (exit code, last error line)
    invalid: dict[str, str]  # area -> why its output is not what its command writes

    def __init__(
        self,
        files: dict[str, FileFact],
        packages: dict[str, Package],
        services: dict[str, Service],
        inventory: Mapping[Fact[Any], dict[str, Any] | None] | None = None,
        *,
        unread: Mapping[str, str] | None = None,
        invalid: Mapping[str, str] | None = None,
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
        object.__setattr__(self, "unread", dict(unread or {}))
        object.__setattr__(self, "invalid", dict(invalid or {}))

    def unreadable(self, area: str) -> bool:
        """Whether `area` could not be read (unread or invalid): its values say nothing."""
        return area in self.unread or area in self.invalid

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
            "unread": dict(self.unread),
            "invalid": dict(self.invalid),
            **{fact.name: fact.to_plain(found) for fact, found in self.inventory.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], registry: Registry = REGISTRY) -> Facts:
        """The inverse of to_dict(), which also reads versions 1 and 2; raise ValueError on
        another.

        A fact of `registry` a record does not hold (a version 1 record, or one written before the
        fact was declared: a baseline baked earlier) is not gathered, None, and drift skips it.
        Versions 1 and 2 have no unread nor invalid areas.
        """
        version = data.get("version")
        if version not in (1, 2, VERSION):
            raise ValueError(f"facts layout version {version!r}, expected 1, 2 or {VERSION}")
        try:
            inventory: Inventory = {
                fact: None if version == 1 else fact.from_plain(data.get(fact.name))
                for fact in registry
            }
            return cls(
                files={path: FileFact(**f) for path, f in data["files"].items()},
                packages={key: Package(**p) for key, p in data["packages"].items()},
                services={name: Service(**s) for name, s in data["services"].items()},
                inventory=inventory,
                unread=_reasons(data, "unread") if version == VERSION else None,
                invalid=_reasons(data, "invalid") if version == VERSION else None,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a facts record: {exc}") from exc

    def summary(self) -> dict[str, int]:
        """How many of each fact; the optional ones not gathered, or not read, are left out."""
        counts = {
            "files": len(self.files),
            "hashed": sum(1 for f in self.files.values() if f.sha256 is not None),
            "setuid": len(self.setuid()),
            "packages": len(self.packages),
            "services": len(self.services),
        }
        for fact, found in self.inventory.items():
            if found is not None and not self.unreadable(fact.name):
                counts[fact.name] = len(found)
        return counts


def _reasons(data: Mapping[str, Any], key: str) -> dict[str, str]:
    """The area -> reason mapping of a record; TypeError if it is not one."""
    found = data[key]
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        raise TypeError(f"{key} is not a mapping of areas to reasons")
    return dict(found)


def gather(
    session: Runner,
    roots: Sequence[str],
    timeout: float = 120,
    cache: ScanCache | None = None,
    registry: Registry = REGISTRY,
) -> Facts:
    """Gather the facts of the server behind `session`: one run of one script, `timeout` seconds.

    Roots that do not exist on the server are skipped. An area whose section fails, or whose
    output is invalid, is named in the facts' `unread` or `invalid` (see the module), whichever
    it is. If the script as a whole failed (no sections to read), raise CommandError; if its
    output cannot be split into its sections though it succeeded, UntrustedOutput. With a
    `cache` (see facts.cache), files known unchanged are not hashed again, the unit file states
    are not asked of systemd again while its unit directories are unchanged, and the cache is
    brought up to date with what could be read.
    """
    run = script.of(registry)
    stdin = cache.files.payload() if cache else b""
    known = script.known_args(cache.units if cache else None)
    roots = files.normalize(roots)
    settled = (cache.files.settled if cache else None) or ""
    listings = cache.files.listed() if cache else {}
    listed = " ".join(listings)
    capped = _image_capabilities(cache)
    result = session.run(
        run.command, *known, settled, listed, capped, *roots, timeout=timeout, stdin=stdin
    )
    try:
        sections = run.split(result.stdout, result.stderr)
    except ValueError as exc:
        if result.rc != 0:
            stderr = script.without_markers(result.stderr)
            raise command_error(session, script.LABEL, result.rc, stderr) from exc
        raise UntrustedOutput(
            f"{server_name(session)}: the output of `{script.LABEL}` is not laid out as phoenix"
            f" writes it: {_capped(str(exc))}",
            hint="the server's shell or tools do not behave as they should: it may be"
            " compromised; replace it (phoenix rebuild) and keep it for forensics if you can",
        ) from exc
    areas = _Areas(sections)
    hashes = cache.files.entries if cache else None
    settled_at = cache.files.settled if cache else None
    scan = areas.read("files", lambda text: files.parse(text, hashes, roots, settled_at, listings))
    if scan is not None and (failed := files.failed_pass(scan)) is not None:
        areas.unread["files"] = _failure(*failed, sections["files"].stderr)
        scan = None
    if cache is not None:
        if scan is not None:
            cache.files.remember(scan)
        cache.units = _units(sections) if "services" not in areas.invalid else None
    return Facts(
        files=scan.files if scan is not None else {},
        packages=areas.read("packages", packages.parse) or {},
        services=areas.read("services", services.parse) or {},
        inventory={fact: areas.read(fact.name, fact.parse) or {} for fact in registry},
        unread=areas.unread,
        invalid=areas.invalid,
    )


def image_capabilities(baseline: Facts | None) -> dict[str, str] | None:
    """What a scan that is not deep is given of its server's image (ScanCache.image_capabilities):
    the capabilities its baseline read; None (every file is read) when it has none on record."""
    if baseline is None or baseline.unreadable(CAPABILITIES.name):
        return None
    return baseline.get(CAPABILITIES)


def _image_capabilities(cache: ScanCache | None) -> str:
    """The capabilities command's image paths (see facts.capabilities): empty, to read every
    file, unless the cache has both the server's first start and its image's capabilities."""
    if cache is None or not cache.files.settled or cache.image_capabilities is None:
        return ""
    return capabilities.image_paths(cache.image_capabilities) or ""


class _Areas:
    """Reads each section, noting those that failed (unread) or whose output is invalid."""

    def __init__(self, sections: dict[str, Section]) -> None:
        self.sections = sections
        self.unread: dict[str, str] = {}
        self.invalid: dict[str, str] = {}

    def read(self, area: str, parse: Callable[[str], T]) -> T | None:
        """`parse` of the section's output; None (and the area noted) if it cannot be read."""
        section = self.sections[area]
        if section.rc != 0:
            self.unread[area] = _failure(area, section.rc, section.stderr)
            return None
        try:
            return parse(section.stdout)
        except ValueError as exc:
            self.invalid[area] = _capped(str(exc))
            return None


def _failure(what: str, rc: int, stderr: str) -> str:
    """Why a section failed, for the operator: its exit code, and the last line of its stderr
    (written by the server: escaped and capped)."""
    return _capped(f"{what} failed (exit {rc}): {_escaped(last_line(stderr))}")


def _capped(text: str) -> str:
    """A reason as stored: control characters escaped, at most MAX_REASON characters."""
    text = _escaped(text)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def _escaped(text: str) -> str:
    return fields.CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _units(sections: dict[str, Section]) -> tuple[str, str] | None:
    """What the script used as `systemctl list-unit-files`, with its fingerprint, if it worked."""
    if script.UNITS not in sections:
        return None
    fingerprint, _, text = sections[script.UNITS].stdout.partition("\n")
    usable = sections["services"].rc == 0 and len(fingerprint) == 32 and text.strip()
    return (fingerprint, text) if usable else None

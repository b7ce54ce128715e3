"""The registry of inventory facts: each optional fact declared once, and read by everything else.

A `Fact` says all phoenix needs to know of one optional area of facts: its name (the section of the
script, the key of the stored record, of `Facts.summary()`), its shell code and pure parser (in the
fact's own module), how its values become plain JSON-able data and back, and how drift compares two
of them (`Keyed` or `Lines`, with the kinds of findings and their severities). `REGISTRY` lists
them in order; the script (`script.of`), `Facts` (gather, to_dict, from_dict, summary) and the drift
diff all read it. To add a fact: write its module, then declare one `Fact` here and add it to
`REGISTRY`. A `Registry` of more facts (`REGISTRY.extended(...)`) can be handed to `gather()` and
`Facts.from_dict()`: the facts gathered carry their own registry's facts, and so does the diff.

Files, packages and services are required, and handled on their own (see `phoenix.facts`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

from phoenix.config import Severity
from phoenix.facts import (
    capabilities,
    cron,
    executables,
    manager_env,
    mounts,
    ports,
    processes,
    ssh_keys,
    sysctl,
    transient,
    users,
)
from phoenix.facts.executables import Executable
from phoenix.facts.ports import Listener
from phoenix.facts.users import Group, User

V = TypeVar("V")

# Names a fact may not take: the required facts, the keys of the record and of summary(), the
# script's last section, and Facts's own keyword.
RESERVED = (
    "version", "files", "packages", "services", "hashed", "setuid", "units", "inventory", "unread",
    "invalid",
)  # fmt: skip


@dataclass(frozen=True)
class Kind:
    """A kind of drift finding, with its severity (low, medium or high)."""

    name: str  # "user.added"
    severity: Severity
    meaning: str = ""  # what such a finding tells the operator, for reports and `drift rules`

    def __post_init__(self) -> None:
        if self.severity not in set(Severity):
            allowed = ", ".join(Severity)
            raise ValueError(f"{self.name}: severity {self.severity!r}, expected one of {allowed}")
        object.__setattr__(self, "severity", Severity(self.severity))


def by_key(key: str, value: Any) -> str:
    """What noise rules match besides the key: the key itself."""
    return key


def show(value: Any) -> str:
    """A value as a finding shows it: a record's fields but its name, `k=v ...`; else str()."""
    if hasattr(value, "__dataclass_fields__"):
        fields = asdict(value)
        return " ".join(f"{k}={v}" for k, v in fields.items() if k != "name")
    return str(value)


def never(before: Any, after: Any) -> bool:
    return False


@dataclass(frozen=True)
class Keyed:
    """Drift of a fact keyed by name: a finding when a key appears, goes, or its value changes.

    A kind left None is no finding. Noise rules `RULE:GLOB` match the key, or `subject(key, value)`.
    """

    rule: str  # the area of the noise rules: "user" for `user:GLOB`
    added: Kind | None = None
    removed: Kind | None = None
    changed: Kind | None = None
    subject: Callable[[str, Any], str] = by_key
    show: Callable[[Any], str] = show
    # a key added or changed for which escalates(before, after) holds (before None when added)
    # is a finding of kind `escalated` instead: a new or changed setuid executable, say
    escalated: Kind | None = None
    escalates: Callable[[Any, Any], bool] = never

    def kind_of(self, kind: Kind, before: Any, after: Any) -> Kind:
        """The kind of a key added or changed (`kind`), or `escalated` if the change escalates."""
        if self.escalated is not None and self.escalates(before, after):
            return self.escalated
        return kind


@dataclass(frozen=True)
class Lines:
    """Drift of a fact of lines per source (keys per user, entries per crontab): a finding a line.

    Noise rules `RULE:GLOB` match `SOURCE:LINE`.
    """

    rule: str
    added: Kind
    removed: Kind


@dataclass(frozen=True, eq=False, repr=False)
class Fact(Generic[V]):
    """One optional fact: key -> value, gathered by one section of the script."""

    name: str
    command: str  # shell code of its section (see script)
    parse: Callable[[str], dict[str, V]]  # the section's output; ValueError if unreadable
    plain: Callable[[V], Any]  # a value as JSON-able data
    read: Callable[[Any], V]  # the inverse of plain; TypeError or KeyError on other data
    drift: Keyed | Lines

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name) or self.name in RESERVED:
            raise ValueError(f"{self.name!r} cannot name a fact: it must be a new identifier")

    def __repr__(self) -> str:
        return f"Fact({self.name!r})"

    def to_plain(self, found: dict[str, V] | None) -> dict[str, Any] | None:
        return None if found is None else {key: self.plain(value) for key, value in found.items()}

    def from_plain(self, data: Any) -> dict[str, V] | None:
        """The inverse of to_plain(); raise TypeError, KeyError or AttributeError on other data."""
        return None if data is None else {key: self.read(value) for key, value in data.items()}

    def kinds(self) -> tuple[Kind, ...]:
        drift = self.drift
        changed = drift.changed if isinstance(drift, Keyed) else None
        escalated = drift.escalated if isinstance(drift, Keyed) else None
        kinds = (drift.added, drift.removed, changed, escalated)
        return tuple(kind for kind in kinds if kind is not None)


@dataclass(frozen=True, eq=False)
class Registry:
    """The optional facts, in the order of the script and of the record."""

    facts: tuple[Fact[Any], ...]

    def __post_init__(self) -> None:
        names = self.names()
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"facts declared twice: {', '.join(twice)}")
        kinds = [kind for fact in self.facts for kind in fact.kinds()]
        clash = sorted({k.name for k in kinds for o in kinds if k.name == o.name and k != o})
        if clash:
            raise ValueError(f"kinds of findings declared with two severities: {', '.join(clash)}")

    def __iter__(self) -> Iterator[Fact[Any]]:
        return iter(self.facts)

    def names(self) -> tuple[str, ...]:
        return tuple(fact.name for fact in self.facts)

    def extended(self, *more: Fact[Any]) -> Registry:
        """This registry with `more` facts after its own."""
        return Registry((*self.facts, *more))

    def severity(self) -> dict[str, Severity]:
        """Kind of finding -> severity, for every kind the facts declare."""
        return {kind.name: kind.severity for fact in self.facts for kind in fact.kinds()}


# -- plain data back to values: refuse what to_plain does not write -------------------------


def strings(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list):
        raise TypeError(f"expected a list, found {type(values).__name__}")
    return tuple(string(v) for v in values)


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, found {type(value).__name__}")
    return value


def _group(data: Any) -> Group:
    return Group(**{**data, "members": strings(data["members"])})


def _with_process(key: str, listener: Listener) -> str:
    return f"{key}@{listener.process}" if listener.process else key


# -- the facts -------------------------------------------------------------------------------

USERS: Fact[User] = Fact(
    name="users",
    command=users.COMMAND,
    parse=users.parse,
    plain=asdict,
    read=lambda data: User(**data),
    drift=Keyed(
        "user",
        added=Kind("user.added", Severity.HIGH),
        removed=Kind("user.removed", Severity.MEDIUM),
        changed=Kind("user.changed", Severity.HIGH),
    ),
)
GROUPS: Fact[Group] = Fact(
    name="groups",
    command=users.GROUPS_COMMAND,
    parse=users.parse_groups,
    plain=lambda group: {**asdict(group), "members": list(group.members)},
    read=_group,
    drift=Keyed("group", changed=Kind("group.changed", Severity.MEDIUM)),
)
SSH_KEYS: Fact[tuple[str, ...]] = Fact(  # user -> authorized key lines
    name="ssh_keys",
    command=ssh_keys.SCRIPT,
    parse=ssh_keys.parse,
    plain=list,
    read=strings,
    drift=Lines(
        "ssh_key",
        added=Kind("ssh_key.added", Severity.HIGH),
        removed=Kind("ssh_key.removed", Severity.LOW),
    ),
)
CRON: Fact[tuple[str, ...]] = Fact(  # crontab path -> entries
    name="cron",
    command=cron.SCRIPT,
    parse=cron.parse,
    plain=list,
    read=lambda data: cron.redacted(strings(data)),  # a record stored before redaction too
    drift=Lines(
        "cron",
        added=Kind("cron.added", Severity.MEDIUM),
        removed=Kind("cron.removed", Severity.LOW),
    ),
)
TIMERS: Fact[str] = Fact(  # timer unit -> unit file state
    name="timers",
    command=cron.TIMERS_COMMAND,
    parse=cron.parse_timers,
    plain=str,
    read=string,
    drift=Keyed(  # a new timer, whatever its state, and one whose state changes
        "timer",
        added=Kind("timer.enabled", Severity.MEDIUM),
        changed=Kind("timer.enabled", Severity.MEDIUM),
    ),
)
PORTS: Fact[Listener] = Fact(  # "tcp/0.0.0.0:22" -> listener
    name="ports",
    command=ports.COMMAND,
    parse=ports.parse,
    plain=asdict,
    read=lambda data: Listener(**data),
    drift=Keyed(
        "port",
        added=Kind("port.opened", Severity.MEDIUM),
        removed=Kind("port.closed", Severity.LOW),
        subject=_with_process,
    ),
)
# -- the running system: what a compromised server hides from a file checker ----------------

SYSCTL: Fact[str] = Fact(  # every namespaced sysctl key, and those of SYSCTL_KEYS -> value
    name="sysctl",
    command=sysctl.SCRIPT,
    parse=sysctl.parse,
    plain=str,
    read=string,
    drift=Keyed(  # a key on one side only (a kernel module, an older baseline) is no finding
        "sysctl",
        changed=Kind(
            "sysctl.changed",
            Severity.MEDIUM,
            meaning="a kernel setting differs from the image's: set by hand (sysctl -w) on the "
            "running server, e.g. forwarding, redirects or a namespace limit",
        ),
    ),
)
MANAGER_ENV: Fact[str] = Fact(  # variable -> value, of systemd's manager environment
    name="manager_env",
    command=manager_env.COMMAND,
    parse=manager_env.parse,
    plain=str,
    read=string,
    drift=Keyed(
        "manager_env",
        added=Kind(
            "manager_env.added",
            Severity.HIGH,
            meaning="a variable set in systemd's environment (systemctl set-environment): every "
            "service started from now on inherits it, LD_PRELOAD for one",
        ),
        removed=Kind(
            "manager_env.removed",
            Severity.LOW,
            meaning="a variable of the image's systemd environment was unset on the server",
        ),
        changed=Kind(
            "manager_env.changed",
            Severity.HIGH,
            meaning="a variable of systemd's environment changed (a PATH with another directory "
            "first): every service started from now on inherits it",
        ),
    ),
)
TRANSIENT: Fact[str] = Fact(  # transient unit -> what it runs
    name="transient",
    command=transient.SCRIPT,
    parse=transient.parse,
    plain=str,
    read=string,
    drift=Keyed(
        "transient",
        added=Kind(
            "transient.added",
            Severity.HIGH,
            meaning="a unit started by hand (systemd-run), outside the image: a service, scope "
            "or timer with no unit file on disk, as persistence hides",
        ),
        changed=Kind(
            "transient.changed",
            Severity.MEDIUM,
            meaning="a transient unit the image starts runs something else",
        ),
    ),
)
MOUNTS: Fact[str] = Fact(  # mount point -> "fstype source root"
    name="mounts",
    command=mounts.SCRIPT,
    parse=mounts.parse,
    plain=str,
    read=string,
    drift=Keyed(
        "mount",
        added=Kind(
            "mount.added",
            Severity.HIGH,
            meaning="a mount the image does not have: a bind mount or tmpfs over a directory "
            "hides its files from every tool on the server, phoenix's file checks among them",
        ),
        removed=Kind(
            "mount.removed",
            Severity.MEDIUM,
            meaning="a mount of the image is gone from the server",
        ),
        changed=Kind(
            "mount.changed",
            Severity.MEDIUM,
            meaning="a mount point shows another filesystem, source or root than in the image: "
            "something was mounted over it",
        ),
    ),
)
PROCESSES_DELETED: Fact[str] = Fact(  # executable gone from disk -> command names
    name="processes_deleted",
    command=processes.SCRIPT,
    parse=processes.parse_deleted,
    plain=str,
    read=string,
    drift=Keyed(
        "process",
        added=Kind(
            "process.deleted",
            Severity.HIGH,
            meaning="a process runs a binary that is gone from disk (deleted once started, or a "
            "memfd): classic for malware, which no file check can then find",
        ),
    ),
)
PROCESSES_OUTSIDE: Fact[str] = Fact(  # executable outside the system directories -> names
    name="processes_outside",
    command=processes.SCRIPT,
    parse=processes.parse_outside,
    plain=str,
    read=string,
    drift=Keyed(
        "process",
        added=Kind(
            "process.outside",
            Severity.HIGH,
            meaning="a process runs a binary from outside the image's system directories "
            "(/tmp, /dev/shm, /root...): software the image did not install",
        ),
    ),
)
RUNNING = (SYSCTL, MANAGER_ENV, TRANSIENT, MOUNTS, PROCESSES_DELETED, PROCESSES_OUTSIDE)


# -- what a compromised server hides from a file checker: executables and capabilities anywhere --

EXECUTABLES: Fact[Executable] = Fact(  # path -> mode, owner, size, SHA-256
    name="executables",
    command=executables.COMMAND,
    parse=executables.parse,
    plain=asdict,
    read=lambda data: Executable(**data),
    drift=Keyed(
        "executable",
        added=Kind(
            "executable.added",
            Severity.HIGH,
            meaning="a new executable file the image did not have: a dropped tool or backdoor",
        ),
        removed=Kind(
            "executable.removed", Severity.LOW, meaning="an executable file of the image is gone"
        ),
        changed=Kind(
            "executable.changed",
            Severity.HIGH,
            meaning="an executable's content, mode or owner changed: a replaced or trojaned binary",
        ),
        escalated=Kind(
            "executable.setuid",
            Severity.HIGH,
            meaning="a new or changed executable with the setuid or setgid bit: a way to root",
        ),
        escalates=executables.setuid_after,
        show=executables.show,
    ),
)
CAPABILITIES: Fact[str] = Fact(  # path -> its file capabilities and other security.* attributes
    name="capabilities",
    command=capabilities.COMMAND,
    parse=capabilities.parse,
    plain=str,
    read=string,
    drift=Keyed(
        "capability",
        added=Kind(
            "capability.added",
            Severity.HIGH,
            meaning="a file now grants privileges without setuid (cap_setuid+ep on a copy of "
            "python...) or carries a new security attribute",
        ),
        removed=Kind(
            "capability.removed",
            Severity.LOW,
            meaning="a file of the image lost its capabilities or security attributes",
        ),
        changed=Kind(
            "capability.changed",
            Severity.HIGH,
            meaning="a file's capabilities or security attributes changed: more privileges?",
        ),
    ),
)

REGISTRY = Registry(
    (USERS, GROUPS, SSH_KEYS, CRON, TIMERS, PORTS, *RUNNING, EXECUTABLES, CAPABILITIES)
)

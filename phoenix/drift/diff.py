"""Drift: what on a live server is no longer what its image was. A pure function of two Facts.

`diff(baseline, live, rules)` compares the facts of a pristine server of the image (the baseline)
with the facts of a live server and returns findings, each with a kind, a subject (the path,
package, unit, user, port... that changed), a severity and what it was and is. What differs on
every healthy server (its identity, DHCP's files, ...) is left out by the noise rules.
The servers themselves are compared in `servers`, secrets recognised in `secrets`.
"""

from __future__ import annotations

import fnmatch
import functools
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from phoenix.config import Severity
from phoenix.facts import REGISTRY, Facts, FileFact
from phoenix.facts.registry import Keyed, Kind, Lines

# kind -> severity. An added SSH key, setuid bit, user or replaced binary is how a break-in looks.
SEVERITY: dict[str, Severity] = {
    "file.modified": Severity.MEDIUM,
    "file.added": Severity.LOW,
    "file.removed": Severity.MEDIUM,
    "file.mode": Severity.MEDIUM,
    "file.owner": Severity.MEDIUM,
    "binary.modified": Severity.HIGH,
    "setuid.added": Severity.HIGH,
    "package.added": Severity.MEDIUM,
    "package.removed": Severity.MEDIUM,
    "package.changed": Severity.MEDIUM,
    "service.enabled": Severity.MEDIUM,
    "service.disabled": Severity.MEDIUM,
    "service.stopped": Severity.MEDIUM,
    # the inventory's kinds, as each fact of the registry declares them: a new user or SSH key...
    **REGISTRY.severity(),
    "host_key.changed": Severity.HIGH,
    # The servers themselves, as Terraform's refresh finds them: gone or stopped means a fleet
    # serving with fewer servers than it should; a changed setting is a hand-made snowflake.
    "server.missing": Severity.HIGH,
    "server.stopped": Severity.HIGH,
    "server.config": Severity.MEDIUM,
    # What a server would not let phoenix read: an area whose command failed or printed what it
    # never prints (facts.*), a scan stopped by forged or endless output, a server not scanned.
    "facts.unread": Severity.HIGH,
    "facts.invalid": Severity.HIGH,
    "scan.untrusted": Severity.HIGH,
    "scan.failed": Severity.HIGH,
}


BINARY_DIRS = ("/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/", "/usr/lib/", "/usr/libexec/")

# What differs on every healthy server. `KIND:PATTERN` (fnmatch on the subject); a bare pattern
# starting with / is a file pattern. Shown by `phoenix drift rules`; extended by [drift] ignore.
DEFAULT_RULES: tuple[str, ...] = (
    "/etc/machine-id",  # made at first boot
    "/var/lib/dbus/machine-id",
    "/etc/hostname",  # written by LXD's template: the server's name
    "/etc/hosts",  # likewise
    "/etc/resolv.conf",  # written by DHCP
    "/etc/ssh/ssh_host_*",  # every server makes its own host keys
    "/var/lib/dhcp/*",  # leases
    "/etc/adjtime",
    "/etc/ld.so.cache",  # rebuilt by ldconfig with the same content but new metadata
    "/var/spool/cron/crontabs",  # the directory's own times change with every crontab run
    "/root/.cache/*",
    "/etc/.pwd.lock",
    "/etc/.resolv.conf.dhclient-new.*",
    "port:udp/*:68",  # dhclient
    "port:udp/*:*@dhclient",  # dhclient's extra sockets
    "service:systemd-*",  # one-shot boot units come and go
    "service:getty@*",
    "service:console-getty.service",
    "service:ifup@*",
    "service:e2scrub*",
    "service:apt-daily*",
    "service:dpkg-db-backup.service",
    "service:man-db.service",
    "service:logrotate.service",
)


@dataclass(frozen=True, kw_only=True)
class Finding:
    kind: str
    subject: str
    severity: Severity
    before: str | None = None
    after: str | None = None
    evidence: str | None = None  # "sha256:HEX" of the content archived (phoenix.evidence)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Rules:
    patterns: tuple[str, ...] = DEFAULT_RULES

    @classmethod
    def with_extra(cls, extra: Iterable[str]) -> Rules:
        return cls((*DEFAULT_RULES, *extra))

    def ignores(self, area: str, subject: str) -> bool:
        """Whether a rule of `area` matches `subject` (fnmatch, case-sensitive)."""
        matcher = _matcher(self.patterns, area)
        return matcher is not None and matcher(subject) is not None


@functools.cache
def _matcher(patterns: tuple[str, ...], area: str) -> Callable[[str], object] | None:
    """One regular expression for every glob of `area` among `patterns` (a scan asks thousands
    of times, one glob at a time was most of a repeat scan's parsing); None: no rule there."""
    globs = [glob for pattern in patterns for rule, glob in [split_rule(pattern)] if rule == area]
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)).match


def split_rule(pattern: str) -> tuple[str, str]:
    """`KIND:GLOB` -> (KIND, GLOB); a bare `/path/glob` is a file rule."""
    if pattern.startswith("/"):
        return "file", pattern
    area, _, glob = pattern.partition(":")
    return area, glob


def at_least(findings: Sequence[Finding], severity: Severity) -> list[Finding]:
    return [f for f in findings if f.severity.rank >= severity.rank]


def ranked(findings: Iterable[Finding]) -> list[Finding]:
    """`findings` highest severity first, then by kind and subject."""
    return sorted(findings, key=lambda f: (-f.severity.rank, f.kind, f.subject))


def diff(baseline: Facts, live: Facts, rules: Rules = Rules()) -> list[Finding]:
    """Every way `live` differs from `baseline`, noise left out, sorted by severity then subject.

    An area (files, packages, an inventory fact...) unread or invalid on either side is not
    compared (its values say nothing); one that is so on `live` only is one high finding,
    `facts.unread` or `facts.invalid`, whose `after` says why.
    """

    def skip(area: str) -> bool:
        return baseline.unreadable(area) or live.unreadable(area)

    return ranked(
        [
            *_unreadable(baseline, live),
            *([] if skip("files") else _files(baseline.files, live.files, rules)),
            *([] if skip("packages") else _packages(baseline, live, rules)),
            *([] if skip("services") else _services(baseline, live, rules)),
            *_inventory(baseline, live, rules),
        ]
    )


def _unreadable(baseline: Facts, live: Facts) -> list[Finding]:
    """One finding for each area the live server would not let be read, that the baseline
    could: its section failed (facts.unread) or its output is not what phoenix's command
    writes (facts.invalid)."""
    found = [
        finding("facts.unread", area, None, why)
        for area, why in live.unread.items()
        if not baseline.unreadable(area)
    ]
    return found + [
        finding("facts.invalid", area, None, why)
        for area, why in live.invalid.items()
        if not baseline.unreadable(area)
    ]


def finding(kind: str, subject: str, before: object = None, after: object = None) -> Finding:
    severity = SEVERITY[kind]
    return Finding(
        kind=kind, subject=subject, severity=severity, before=_text(before), after=_text(after)
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# -- files ------------------------------------------------------------------------------------


def _files(
    base: Mapping[str, FileFact], live: Mapping[str, FileFact], rules: Rules
) -> list[Finding]:
    changed: list[tuple[str, list[Finding]]] = []
    for path, now in live.items():  # ~8,000 files, nearly all the same: the same first, quickly
        was = base.get(path)
        if was is not None and (was is now or _same(was, now)):
            continue
        changed.append((path, _file_findings(path, was, now)))
    changed += [(path, _file_findings(path, base[path], None)) for path in base.keys() - live]
    found: list[Finding] = []
    for path, changes in sorted(changed, key=lambda item: item[0]):
        if changes and not rules.ignores("file", path):  # rules only for what changed: faster
            found += changes
    return found


# Every field of a file _file_changes compares (a test holds the two together)
_COMPARED = operator.attrgetter("type", "sha256", "target", "mode", "owner", "group")


def _same(was: FileFact, now: FileFact) -> bool:
    """Whether a file shows no change _file_changes finds."""
    return bool(_COMPARED(was) == _COMPARED(now))


def _file_findings(path: str, was: FileFact | None, now: FileFact | None) -> list[Finding]:
    if was is None and now is not None:
        added = [finding("file.added", path, None, _describe(now))]
        return added + (
            [finding("setuid.added", path, None, now.mode)] if _setuid(now.mode) else []
        )
    if now is None and was is not None:
        return [finding("file.removed", path, _describe(was), None)]
    if was is not None and now is not None:
        return _file_changes(path, was, now)
    return []


def _file_changes(path: str, was: FileFact, now: FileFact) -> list[Finding]:
    found: list[Finding] = []
    if was.type != now.type or was.sha256 != now.sha256 or was.target != now.target:
        binary = now.type == "f" and path.startswith(BINARY_DIRS)
        kind = "binary.modified" if binary else "file.modified"
        found.append(finding(kind, path, _content(was), _content(now)))
    if was.mode != now.mode:
        found.append(finding("file.mode", path, was.mode, now.mode))
        if _setuid(now.mode) and not _setuid(was.mode):
            found.append(finding("setuid.added", path, was.mode, now.mode))
    if (was.owner, was.group) != (now.owner, now.group):
        found.append(
            finding("file.owner", path, f"{was.owner}:{was.group}", f"{now.owner}:{now.group}")
        )
    return found


def _setuid(mode: str) -> bool:
    return len(mode) == 4 and int(mode[0]) & 0o6 != 0


def _content(f: FileFact) -> str:
    """What a change of content shows: a hash, never the content (it may be a secret)."""
    if f.type == "l":
        return f"-> {f.target}"
    if f.type != "f":
        return f"type {f.type}"
    return f"sha256:{(f.sha256 or 'unreadable')[:16]} size {f.size}"


def _describe(f: FileFact) -> str:
    return f"{_content(f)} mode {f.mode} {f.owner}:{f.group}"


# -- packages and services --------------------------------------------------------------------


def _packages(baseline: Facts, live: Facts, rules: Rules) -> list[Finding]:
    found: list[Finding] = []
    base, now = baseline.packages, live.packages
    for name in sorted(base.keys() | now.keys()):
        if rules.ignores("package", name):
            continue
        was, new = base.get(name), now.get(name)
        if was is None and new is not None:
            found.append(finding("package.added", name, None, new.version))
        elif new is None and was is not None:
            found.append(finding("package.removed", name, was.version, None))
        elif was is not None and new is not None and was.version != new.version:
            found.append(finding("package.changed", name, was.version, new.version))
    return found


ENABLED = ("enabled", "enabled-runtime", "alias")


def _services(baseline: Facts, live: Facts, rules: Rules) -> list[Finding]:
    found: list[Finding] = []
    base, now = baseline.services, live.services
    for name in sorted(base.keys() | now.keys()):
        if rules.ignores("service", name):
            continue
        was, new = base.get(name), now.get(name)
        was_on = was is not None and was.enabled in ENABLED
        now_on = new is not None and new.enabled in ENABLED
        if now_on and not was_on:
            found.append(finding("service.enabled", name, was.enabled if was else None, "enabled"))
        elif was_on and not now_on:
            after = new.enabled if new else "removed"
            found.append(finding("service.disabled", name, was.enabled if was else None, after))
        elif was is not None and was.sub == "running" and (new is None or new.sub != "running"):
            found.append(finding("service.stopped", name, "running", new.sub if new else None))
    return found


# -- the inventory: users, keys, cron, ports, sysctl... as the facts registry declares them -----


def _inventory(baseline: Facts, live: Facts, rules: Rules) -> list[Finding]:
    """Each optional fact, compared as its registry entry says; skipped if either side lacks it."""
    found: list[Finding] = []
    for fact, was in baseline.inventory.items():
        now = live.get(fact)
        if was is None or now is None:
            continue
        if baseline.unreadable(fact.name) or live.unreadable(fact.name):
            continue
        if isinstance(fact.drift, Lines):
            found += _lines(fact.drift, was, now, rules)
        else:
            found += _keyed(fact.drift, was, now, rules)
    return found


def _keyed(
    spec: Keyed, was: Mapping[str, Any], now: Mapping[str, Any], rules: Rules
) -> list[Finding]:
    """A finding for each key that appears, goes or whose value changes, if `spec` has its kind."""
    found: list[Finding] = []
    for key in sorted(was.keys() | now.keys()):
        before, after = was.get(key), now.get(key)
        if before == after:
            continue  # rules only for what changed: most keys are unchanged
        subject = spec.subject(key, after or before)
        if rules.ignores(spec.rule, subject) or rules.ignores(spec.rule, key):
            continue
        if before is None and after is not None and spec.added:
            found.append(_of(spec.kind_of(spec.added, None, after), key, None, spec.show(after)))
        elif after is None and before is not None and spec.removed:
            found.append(_of(spec.removed, key, spec.show(before), None))
        elif before is not None and after is not None and before != after and spec.changed:
            kind = spec.kind_of(spec.changed, before, after)
            found.append(_of(kind, key, spec.show(before), spec.show(after)))
    return found


def _lines(
    spec: Lines, was: Mapping[str, Sequence[str]], now: Mapping[str, Sequence[str]], rules: Rules
) -> list[Finding]:
    """Per-source lists of lines (SSH keys per user, cron entries per file): each line a finding."""
    found: list[Finding] = []
    for source in sorted(was.keys() | now.keys()):
        before, after = set(was.get(source, ())), set(now.get(source, ()))
        for line in sorted(after - before):
            if not rules.ignores(spec.rule, f"{source}:{line}"):
                found.append(_of(spec.added, source, None, _short(line)))
        for line in sorted(before - after):
            if not rules.ignores(spec.rule, f"{source}:{line}"):
                found.append(_of(spec.removed, source, _short(line), None))
    return found


def _of(kind: Kind, subject: str, before: str | None, after: str | None) -> Finding:
    """A finding of a kind a fact declares, with the severity it declares."""
    return Finding(
        kind=kind.name, subject=subject, severity=kind.severity, before=before, after=after
    )


def _short(line: str) -> str:
    return line if len(line) <= 120 else line[:117] + "..."


# -- the servers themselves: what Terraform's refresh found changed outside it ------------------

"""Scanning live servers for drift: one SSH session each, pinned host keys only, in parallel.

A server that cannot be scanned (unreachable, a changed host key, no baseline, forged or endless
output, a command that hangs past the deadline, any error at all while scanning it) is reported
as such, and recorded as such (a `scan.failed` finding); the rest of the fleet is still scanned.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Any

from phoenix import facts
from phoenix.ages import parse_age
from phoenix.config import Severity
from phoenix.drift import evidence, witness
from phoenix.drift.diff import Finding, Rules, at_least, diff, finding
from phoenix.errors import (
    CommandTimeout,
    ExitCode,
    HostKeyError,
    PhoenixError,
    UntrustedOutput,
)
from phoenix.events import Emit, ItemFinished, Outcome, StepOutput, discard
from phoenix.facts.files import SETTLED_TIME, Listing, offered
from phoenix.fleet.records import Records, ServerRecord, ServerStatus
from phoenix.host import keys, ssh
from phoenix.image.registry import Registry, name_of
from phoenix.state import RunKind, RunStatus, Store, now
from phoenix.text import printable
from phoenix.workspace import Workspace


class ScanStatus(StrEnum):
    """What the scan of one server found: clean or drifted, or why it could not be scanned."""

    CLEAN = "clean"
    DRIFTED = "drifted"
    UNREACHABLE = "unreachable"  # no SSH session, the connection dropped, the script failed
    # untrusted: its host key is not the pinned one, or what it sent back is not what phoenix's
    # commands write (forged, cut, too much: an area `facts.invalid`), or a command outlived the
    # deadline, or scanning it failed in any other way: it may be compromised
    UNTRUSTED = "untrusted"
    NO_BASELINE = "no_baseline"  # its image has no (readable) baseline to compare with

    @property
    def scanned(self) -> bool:
        """Whether the server was read (clean or drifted), not left unscanned."""
        return self in (ScanStatus.CLEAN, ScanStatus.DRIFTED)


MAX_REASON = 500  # characters of why a server could not be scanned, as recorded

ServerCheck = Callable[[str], list[Finding]]  # fleet -> findings about its servers themselves


@dataclass(frozen=True, kw_only=True)
class ServerScan:
    name: str
    address: str | None
    image: str
    fleet: str
    status: ScanStatus
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    files: int = 0
    hashed: int = 0  # files hashed by this scan (the rest were known unchanged)
    witnessed: bool = False  # its files were cross-checked on its disk, read from the host
    archived: list[evidence.Archived] = field(default_factory=list)  # new evidence to store

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "image": self.image,
            "fleet": self.fleet,
            "status": self.status,
            "error": self.error,
            "witnessed": self.witnessed,
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass(frozen=True, kw_only=True)
class ScanReport:
    scanned_at: str
    servers: list[ServerScan]
    fail_on: Severity = Severity.LOW
    problems: list[str] = field(default_factory=list)  # what could not be checked, and why

    def as_dict(self) -> dict[str, Any]:
        return {
            "scanned_at": self.scanned_at,
            "servers": [s.as_dict() for s in self.servers],
            "problems": self.problems,
        }

    @property
    def exit_code(self) -> ExitCode:
        if self.problems or any(not s.status.scanned for s in self.servers):
            return ExitCode.REFUSED  # 2: some server could not be scanned
        if any(at_least(s.findings, self.fail_on) for s in self.servers):
            return ExitCode.FAILED  # 1: drift found
        return ExitCode.OK


def scan_server(
    target: ssh.Target,
    baseline: facts.Facts | None,
    rules: Rules,
    private_key: Path,
    roots: Sequence[str],
    timeout: float,
    image: str = "",
    fleet: str = "",
    *,
    cache: facts.ScanCache | None = None,
    keep: evidence.Policy | None = None,
    max_output: int = ssh.MAX_OUTPUT,
    disk: Path | None = None,
    registry: facts.Registry = facts.REGISTRY,
) -> ServerScan:
    """Scan one server against its image's baseline; every failure becomes a status, never a
    raise, whatever the exception (see ScanStatus): UNTRUSTED, with a `scan.untrusted` finding,
    for forged, endless (more than `max_output` bytes) or late output, or an unexpected error.

    With a `disk` (where the host sees the server's root file system), the files the server
    showed are checked against it (see phoenix.drift.witness): any disagreement is UNTRUSTED.

    `registry`: the optional facts gathered beside files, packages and services (all, unless a
    benchmark narrows them).

    With a `cache`, files known unchanged are not hashed again (and the cache is updated); with
    `keep`, the content of changed text files is brought back as evidence (see phoenix.evidence).

    `timeout` is the wall deadline of the server's whole scan, its one connection included (see
    ssh.Watchdog): each step gets only what is left of it, and a server still being scanned past
    it is UNTRUSTED, as one whose command hung, however quickly it answered each command.
    """
    started = time.monotonic()

    def result(
        status: ScanStatus, found: list[Finding] | None = None, error: str | None = None
    ) -> ServerScan:
        took = time.monotonic() - started
        return ServerScan(
            name=target.name,
            address=target.address,
            image=image,
            fleet=fleet,
            status=status,
            findings=found or [],
            error=error,
            seconds=took,
        )

    def untrusted(reason: str, found: list[Finding] | None = None) -> ServerScan:
        why = _capped(reason)
        flagged = finding("scan.untrusted", target.name, None, why)
        return result(ScanStatus.UNTRUSTED, [flagged, *(found or [])], why)

    if baseline is None:
        return result(ScanStatus.NO_BASELINE, error=_no_baseline(image, fleet))
    deadline = time.monotonic() + timeout
    began = time.time()  # the disk's clock, for the witness: what changed since is not compared
    try:
        with ssh.connect(
            target, private_key, min(timeout, 15), max_output, deadline=deadline
        ) as session:
            left = _left(target.name, deadline, timeout)
            live = facts.gather(session, roots, timeout=left, cache=cache, registry=registry)
            _left(target.name, deadline, timeout)  # facts come past it: the scan failed
            found = diff(baseline, live, rules)
            kept = _evidence(session, target.name, found, live.files, keep, deadline, timeout)
    except HostKeyError as exc:
        changed = finding("host_key.changed", target.name, "pinned key", "another key")
        return result(ScanStatus.UNTRUSTED, [changed], exc.message)
    except (UntrustedOutput, CommandTimeout) as exc:
        return untrusted(exc.message)
    except PhoenixError as exc:  # ConnectError, CommandError: no session, or the script failed
        return result(ScanStatus.UNREACHABLE, error=exc.message)
    except Exception as exc:
        return untrusted(f"scanning it failed: {type(exc).__name__}: {exc}")
    found = [evidence.linked(f, kept) for f in found]
    forged = [f for f in found if f.kind == "facts.invalid"]
    if forged:
        areas = ", ".join(f"{f.subject} ({f.after})" for f in forged)
        return untrusted(f"output phoenix's commands never write, in {areas}", found)
    if disk is not None and not live.unreadable("files"):
        try:
            from_image = cache.files.from_image if cache is not None else frozenset()
            first = cache.files.settled if cache is not None else None
            settled = float(first) if first else None
            disagree = witness.check(disk, roots, live.files, began, deadline, from_image, settled)
        except witness.WitnessError as exc:
            return untrusted(f"its disk could not be read whole from the host: {exc}", found)
        if disagree:
            why = f"its disk disagrees with what it showed ({len(disagree)} file(s))"
            return replace(untrusted(why, disagree + found), witnessed=True)
    scanned = result(ScanStatus.DRIFTED if found else ScanStatus.CLEAN, found)
    hashed = cache.hashed if cache is not None else sum(1 for f in live.files.values() if f.sha256)
    return replace(
        scanned, files=len(live.files), hashed=hashed, archived=kept.contents,
        witnessed=disk is not None,
    )  # fmt: skip


def scan_all(
    targets: Sequence[ssh.Target],
    scan_one: Callable[[ssh.Target], ServerScan],
    parallel: int,
    emit: Emit = discard,
) -> list[ServerScan]:
    """The fan-out: each target scanned by `scan_one` (scan_server with its settings: one
    connection, one deadline), at most `parallel` at once; each result emitted (ItemFinished) as
    soon as its server is done, while the others go on. The results in the order of `targets`."""

    def one(target: ssh.Target) -> ServerScan:
        emit(StepOutput("drift", f"scanning {target.name}"))
        scanned = scan_one(target)
        emit(finished(scanned))  # now, not when the last server is done
        return scanned

    workers = max(1, min(parallel, len(targets) or 1))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, targets))


def finished(scanned: ServerScan) -> ItemFinished:
    """The event that says a server's scan is done, and what it found."""
    status = scanned.status
    if status is ScanStatus.CLEAN:
        outcome, detail = Outcome.DONE, "clean"
    elif status is ScanStatus.DRIFTED:
        outcome, detail = Outcome.FAILED, f"drifted: {len(scanned.findings)} finding(s)"
    elif status is ScanStatus.NO_BASELINE:
        outcome, detail = Outcome.SKIPPED, "no baseline"
    else:
        outcome, detail = Outcome.FAILED, f"{status.value}: {scanned.error or ''}".rstrip(": ")
    return ItemFinished("drift", scanned.name, outcome, detail, scanned.seconds)


def _no_baseline(image: str, fleet: str) -> str:
    rebuild = f" and rebuild {fleet} onto it (phoenix rebuild {fleet})" if fleet else ""
    return (
        f"image {image} has no baseline to compare with: bake it again"
        f" (phoenix image bake {name_of(image)} --force){rebuild}"
    )


def _evidence(
    session: ssh.Session,
    server: str,
    found: list[Finding],
    live: dict[str, facts.FileFact],
    keep: evidence.Policy | None,
    deadline: float,
    timeout: float,
) -> evidence.Collected:
    """The evidence of `found`; none (the next scan tries again) if it cannot be fetched. Past
    the scan's deadline, CommandTimeout: the scan failed."""
    if keep is None or not found:
        return evidence.Collected()
    left = _left(server, deadline, timeout)
    try:
        return evidence.collect(session, server, found, live, keep, left)
    except CommandTimeout:
        raise
    except PhoenixError:
        return evidence.Collected()


def _capped(reason: str) -> str:
    """A reason as shown and stored: control characters escaped, at most MAX_REASON chars."""
    text = printable(reason)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def _left(server: str, deadline: float, timeout: float) -> float:
    """Seconds to the scan's `deadline`; CommandTimeout if it has passed (`timeout` seconds
    after the scan began): no step starts past it."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise CommandTimeout(
            f"{server}: its scan did not finish within {timeout:.0f} s",
            hint="the server answered too slowly; the deadline of a server's whole scan is"
            " [drift] timeout in phoenix.toml",
        )
    return left


def scan(
    ws: Workspace,
    fleets: Sequence[str] = (),
    emit: Emit = discard,
    fail_on: Severity | None = None,
    *,
    deep: bool = False,
    only: Sequence[str] = (),
    servers_of: ServerCheck | None = None,
    disks: Callable[[str], Path | None] | None = None,
) -> ScanReport:
    """Scan every serving server of `fleets` (all fleets when empty; only the servers named in
    `only` when given) and record the findings and their evidence.

    Files whose inode, size, mtime and ctime are those of their last hash are not hashed again,
    unless `deep`: then every file is, as on a first scan. `servers_of(fleet)`, when given, finds
    the drift of the servers themselves (deleted, stopped, reconfigured: server.* findings); it
    runs beside the scans and its findings join those of their server. `disks(server)`, when
    given, is where the host sees a server's root file system: the second witness (None: none).
    """
    names = list(fleets) or sorted(ws.config.fleets)
    for name in names:
        ws.fleet(name)  # NotFound for a fleet the config does not define
    cfg = ws.config.drift
    rules = Rules.with_extra(cfg.ignore)
    key, _ = keys.ensure(ws.home)
    with Store.open(ws.home) as store:
        records, registry = Records(store), Registry(store)
        servers = [
            s
            for n in names
            for s in records.servers(n)
            if s.status is ServerStatus.SERVING and (not only or s.name in only)
        ]
        tags = {s.image_tag for s in servers}
        baselines = {tag: _baseline(registry, tag) for tag in tags}
        smokes = _SmokeScans({tag: registry.listings(tag) for tag in tags})
        stored = {s.name: None if deep else _stored_cache(store, s.name) for s in servers}
        caches: dict[str, facts.ScanCache] = {}  # each read in its scan's thread: ~30 ms of JSON
        keep = evidence.Policy(cfg.evidence_limit, tuple(cfg.secrets), evidence.known(store))
        by_name = {s.name: s for s in servers}

        def one(target: ssh.Target) -> ServerScan:
            server = by_name[target.name]
            baseline = baselines[server.image_tag]
            image = functools.partial(smokes.of, server.image_tag)
            cache = caches[server.name] = _cache(stored[server.name], server, deep, baseline, image)
            return scan_server(
                target, baseline, rules, key.private_path, cfg.roots,
                cfg.timeout, server.image_tag, server.fleet,
                cache=cache, keep=keep, max_output=cfg.max_output,
                disk=disks(server.name) if disks else None,
            )  # fmt: skip

        targets = [
            ssh.Target(name=s.name, address=str(s.address), host_key=str(s.host_key))
            for s in servers
        ]
        with ThreadPoolExecutor(2) as checks:
            checking = {n: checks.submit(servers_of, n) for n in names} if servers_of else {}
            scanned = scan_all(targets, one, cfg.parallel, emit)
        problems: list[str] = []
        for name, future in checking.items():
            try:
                scanned = _joined(scanned, future.result(), name, problems)
            except PhoenixError as exc:
                problems.append(f"{name}: its servers could not be checked: {exc.message}")
        report = ScanReport(
            scanned_at=now(), servers=scanned, fail_on=fail_on or cfg.fail_on, problems=problems
        )
        kept = {s.name: caches[s.name] for s in scanned if s.files and s.name in caches}
        _record(store, report, kept, deep)
    return report


def _joined(
    scanned: list[ServerScan], found: list[Finding], fleet: str, problems: list[str]
) -> list[ServerScan]:
    """`scanned` with the server findings of `fleet` joined to their server (subject `NAME` or
    `NAME:KEY`); a clean server with one is drifted. One of no scanned server is a problem."""
    by_server: dict[str, list[Finding]] = {}
    for f in found:
        by_server.setdefault(f.subject.split(":", 1)[0], []).append(f)
    joined = []
    for s in scanned:
        extra = by_server.pop(s.name, []) if s.fleet == fleet else []
        status = ScanStatus.DRIFTED if extra and s.status is ScanStatus.CLEAN else s.status
        joined.append(replace(s, status=status, findings=extra + s.findings) if extra else s)
    for server, findings in sorted(by_server.items()):
        kinds = ", ".join(sorted({f.kind for f in findings}))
        problems.append(f"{fleet}: {server} ({kinds}) is not a serving server phoenix knows")
    return joined


def _stored_cache(store: Store, server: str) -> bytes | None:
    """The server's hash cache as stored (compressed JSON); None if it has none."""
    rows = store.rows("SELECT entries FROM hash_caches WHERE server = ?", (server,))
    return bytes(rows[0]["entries"]) if rows else None


@dataclass(frozen=True)
class SmokeScan:
    """What the smoke scan of a server's image offers its first scan: the listings of the roots
    (files.offered) and the units record (ScanCache.units)."""

    listings: Mapping[str, Listing]
    units: tuple[str, str] | None


NO_SMOKE = SmokeScan({}, None)


def _cache(
    stored: bytes | None,
    server: ServerRecord,
    deep: bool,
    baseline: facts.Facts | None,
    smoke: Callable[[], SmokeScan] = lambda: NO_SMOKE,
) -> facts.ScanCache:
    """The server's hash cache, from what is `stored`; an empty one for a deep scan (every file
    is hashed); for a server never scanned (or whose stored cache is unusable), `first_cache`.
    The image's listings (of its `smoke` scan) are also those its stored cache names by digest
    only."""
    settled = server.settled if server.settled and SETTLED_TIME.fullmatch(server.settled) else None
    image = smoke()
    cache = (
        facts.ScanCache.load(stored, image.listings) if stored is not None and not deep else None
    )
    if cache is None or not cache.files.entries:  # never scanned, or its cache is unusable
        return first_cache(settled, baseline, image, deep)
    cache.files.settled = settled
    cache.image_capabilities = facts.image_capabilities(baseline) if not deep else None
    return cache


def first_cache(
    settled: str | None, baseline: facts.Facts | None, smoke: SmokeScan, deep: bool = False
) -> facts.ScanCache:
    """The cache a server never scanned starts from, its first start `settled` (SETTLED_TIME
    or None). Unless `deep`, it is offered its image's `smoke` scan: the units record the smoke
    server printed (the server's own unit files decide: see facts.services) and, with its first
    start and the image's `baseline`, the files the image made: what it has not written since
    it started is not hashed (facts.files, SETTLED stamps), and a root it holds as the smoke
    server did is not sent."""
    listings = smoke.listings
    if deep:
        return facts.ScanCache(facts.HashCache(settled=settled), image=listings)
    files = (
        facts.HashCache.seeded(baseline.files, settled, listings)
        if settled and baseline
        else facts.HashCache(settled=settled)
    )
    cache = facts.ScanCache(files, smoke.units, image=listings)
    cache.image_capabilities = facts.image_capabilities(baseline)
    return cache


class _SmokeScans:
    """The smoke scan of each image (Registry.listings, a stored ScanCache) that its servers'
    scans are offered, read before the scans start, each decoded once, by the first scan that
    needs it: ~40 ms of JSON."""

    def __init__(self, stored: dict[str, bytes | None]) -> None:
        self._stored = stored
        self._decoded: dict[str, SmokeScan] = {}
        self._lock = threading.Lock()

    def of(self, tag: str) -> SmokeScan:
        """Image `tag`'s smoke scan; an empty one if it kept none, or it is unreadable."""
        with self._lock:
            if tag not in self._decoded:
                self._decoded[tag] = smoke_scan(self._stored.get(tag))
            return self._decoded[tag]


def smoke_scan(stored: bytes | None) -> SmokeScan:
    """What an image's smoke scan, `stored` as Registry.keep_listings keeps it, offers the first
    scans of its servers; nothing (NO_SMOKE) when it kept none."""
    if not stored:
        return NO_SMOKE
    smoke = facts.ScanCache.load(stored)
    return SmokeScan(offered(smoke.files.listings), smoke.units)


def _baseline(registry: Registry, tag: str) -> facts.Facts | None:
    image = registry.get(tag)
    if not image.baseline:
        return None
    try:
        return facts.Facts.from_dict(image.baseline)
    except ValueError:
        return None


def _record(
    store: Store,
    report: ScanReport,
    caches: dict[str, facts.ScanCache] | None = None,
    deep: bool = False,
) -> None:
    """One transaction: the scan's findings, the evidence they name, the updated hash caches.

    A server that could not be scanned (unreachable, untrusted) is recorded as such: one
    `scan.failed` finding, its reason as `after`, so that `drift changes` and the history see
    it. One without a baseline is not (that is not the server's doing).
    """
    run_id = store.start_run(None, RunKind.DRIFT)
    failed = [
        (s.name, finding("scan.failed", s.name, None, _capped(s.error or s.status.value)))
        for s in report.servers
        if s.status in (ScanStatus.UNREACHABLE, ScanStatus.UNTRUSTED)
    ]
    with store.transaction() as db:
        evidence.save(store, (a for s in report.servers for a in s.archived))
        db.executemany(
            "INSERT INTO findings (run_id, server, kind, subject, severity, before, after,"
            " evidence, found_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id, name, f.kind, f.subject, f.severity, f.before, f.after,
                    (f.evidence or "").removeprefix("sha256:") or None, report.scanned_at,
                )
                for name, f in [*((s.name, f) for s in report.servers for f in s.findings), *failed]
            ],
        )  # fmt: skip
        for server, cache in (caches or {}).items():
            db.execute(
                "INSERT INTO hash_caches (server, updated_at, deep_at, entries) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (server) DO UPDATE SET updated_at = excluded.updated_at,"
                " deep_at = COALESCE(excluded.deep_at, deep_at), entries = excluded.entries",
                (
                    server, report.scanned_at, report.scanned_at if deep else None,
                    cache.dump(),
                ),
            )  # fmt: skip
    store.finish_run(run_id, RunStatus.SUCCEEDED)


@dataclass(frozen=True, kw_only=True)
class Change:
    """A finding that appeared, or went away, between two consecutive scans."""

    at: str  # when the later scan ran
    change: str  # appeared | went away
    server: str
    kind: str
    subject: str
    severity: Severity

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def changes_since(ws: Workspace, since: str, fleets: Sequence[str] = ()) -> list[Change]:
    """What appeared or went away between the recorded scans of the last `since` (e.g. 7d)."""
    cutoff = (datetime.now(UTC) - parse_age(since, "--since")).isoformat(timespec="milliseconds")
    with Store.open(ws.home) as store:
        scans = store.rows(
            "SELECT id, started_at FROM runs WHERE kind = ? AND status = ? ORDER BY id",
            (RunKind.DRIFT, RunStatus.SUCCEEDED),
        )
        before = [s for s in scans if s["started_at"] < cutoff][-1:]  # the state at the cutoff
        window = before + [s for s in scans if s["started_at"] >= cutoff]
        found = {s["id"]: _findings(store, s["id"], fleets) for s in window}
    result: list[Change] = []
    for older, newer in pairwise(window):
        was, now_, at = found[older["id"]], found[newer["id"]], newer["started_at"]
        result += [_change(at, "appeared", key) for key in sorted(now_ - was)]
        result += [_change(at, "went away", key) for key in sorted(was - now_)]
    return result


def _change(at: str, change: str, key: tuple[str, str, str, Severity]) -> Change:
    server, kind, subject, severity = key
    return Change(
        at=at, change=change, server=server, kind=kind, subject=subject, severity=severity
    )


def _findings(
    store: Store, run_id: int, fleets: Sequence[str]
) -> set[tuple[str, str, str, Severity]]:
    rows = store.rows(
        "SELECT f.server, f.kind, f.subject, f.severity, s.fleet FROM findings f"
        " JOIN servers s ON s.name = f.server WHERE f.run_id = ?",
        (run_id,),
    )
    return {
        (r["server"], r["kind"], r["subject"], Severity(r["severity"]))
        for r in rows
        if not fleets or r["fleet"] in fleets
    }

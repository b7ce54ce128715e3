"""What a report holds, read from the config and the state store: `build` and its records.

The last drift scan of a server is the latest of its recorded findings (`findings.found_at`, the
scan's `scanned_at`) and of its hash cache (`hash_caches.updated_at`, written by every scan that
read its files, clean or not): a server whose cache is newer than its findings was clean then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from phoenix.ages import parse_age, seconds_since
from phoenix.config import FleetConfig, Severity
from phoenix.fleet.records import Records, RunRecord, ServerRecord, ServerStatus
from phoenix.image.registry import ImageRecord, Registry
from phoenix.state import Store
from phoenix.workspace import Workspace

NEXT_RUNS = 3  # upcoming runs shown per schedule
LAST_RUNS = 10  # past runs shown per fleet

# fleet -> {server: why it is due}; a server absent (or with no reason) is not due
DueOf = Callable[[str], Mapping[str, Sequence[str]]]


@dataclass(frozen=True, kw_only=True)
class ServerRow:
    name: str
    address: str | None
    status: str
    created_at: str
    age_seconds: float
    image: str  # the tag it runs
    image_age_seconds: float | None  # None: the image has no build time recorded
    last_scan: str | None  # None: never scanned
    findings: dict[str, int]  # severity -> count, of its last scan (every severity, 0 too)
    due: bool | None  # None: unknown (no due policy given)
    due_reasons: list[str] = field(default_factory=list)

    @property
    def due_text(self) -> str:
        if self.due is None:
            return "unknown"
        return "; ".join(self.due_reasons) if self.due else "no"


@dataclass(frozen=True, kw_only=True)
class ScheduleRow:
    name: str
    action: str
    cron: str
    next_runs: list[str]  # ISO-8601, in the host's time zone (cron's)
    error: str | None = None  # the expression croniter refused


@dataclass(frozen=True, kw_only=True)
class RunRow:
    id: int
    action: str
    outcome: str
    started_at: str
    finished_at: str | None
    duration_seconds: float | None  # None: still running (or cut short, not yet settled)


@dataclass(frozen=True, kw_only=True)
class FleetReport:
    name: str
    image: str  # the config's image name
    size: int  # declared
    serving: int
    max_age: str | None
    max_age_seconds: float | None
    servers: list[ServerRow]
    schedules: list[ScheduleRow]
    runs: list[RunRow]

    @property
    def due(self) -> int | None:
        """How many servers are due, None when unknown."""
        if any(s.due is None for s in self.servers):
            return None
        return sum(1 for s in self.servers if s.due)


@dataclass(frozen=True, kw_only=True)
class Report:
    generated_at: str
    fleets: list[FleetReport]
    images: dict[str, float]  # tag -> age in seconds: ready images and those live servers run

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "fleets": [{**asdict(f), "due": f.due} for f in self.fleets],
            "images": self.images,
        }


def build(
    ws: Workspace,
    fleets: Sequence[str] = (),
    now: datetime | None = None,
    due_of: DueOf | None = None,
) -> Report:
    """The report of `fleets` (default: every fleet of the config) at `now` (default: now)."""
    at = now or datetime.now(UTC)
    names = list(fleets) or sorted(ws.config.fleets)
    configs = {name: ws.fleet(name) for name in names}  # NotFound names the defined fleets
    with Store.open(ws.home) as store:
        images = {r.tag: r for r in Registry(store).all()}
        records = Records(store)
        reports = [
            _fleet(store, records, ws, name, configs[name], images, at, due_of) for name in names
        ]
    live = {s.image for f in reports for s in f.servers}
    ages = {
        tag: seconds_since(r.built_at, at)
        for tag, r in images.items()
        if r.built_at and (r.status == "ready" or tag in live)
    }
    return Report(generated_at=at.isoformat(timespec="seconds"), fleets=reports, images=ages)


def _fleet(
    store: Store,
    records: Records,
    ws: Workspace,
    name: str,
    cfg: FleetConfig,
    images: Mapping[str, ImageRecord],
    at: datetime,
    due_of: DueOf | None,
) -> FleetReport:
    servers = records.servers(name)
    scans = last_scans(store, [s.name for s in servers])
    due = {k: list(v) for k, v in due_of(name).items()} if due_of else None
    return FleetReport(
        name=name,
        image=cfg.image,
        size=cfg.size,
        serving=sum(1 for s in servers if s.status is ServerStatus.SERVING),
        max_age=cfg.max_age,
        max_age_seconds=parse_age(cfg.max_age, "max_age").total_seconds() if cfg.max_age else None,
        servers=[_server(s, images, scans.get(s.name), at, due) for s in servers],
        schedules=[
            schedule(key, s.action, s.cron, at)
            for key, s in sorted(ws.config.schedules.items())
            if s.fleet == name
        ],
        runs=[_run(r) for r in records.runs(name, limit=LAST_RUNS)],
    )


def _server(
    s: ServerRecord,
    images: Mapping[str, ImageRecord],
    scan: tuple[str, dict[str, int]] | None,
    at: datetime,
    due: dict[str, list[str]] | None,
) -> ServerRow:
    image = images.get(s.image_tag)
    reasons = (due or {}).get(s.name, [])
    return ServerRow(
        name=s.name,
        address=s.address,
        status=s.status.value,
        created_at=s.created_at,
        age_seconds=max(0.0, seconds_since(s.created_at, at)),
        image=s.image_tag,
        image_age_seconds=seconds_since(image.built_at, at) if image and image.built_at else None,
        last_scan=scan[0] if scan else None,
        findings=scan[1] if scan else {},
        due=None if due is None else bool(reasons),
        due_reasons=reasons,
    )


def last_scans(store: Store, servers: Iterable[str]) -> dict[str, tuple[str, dict[str, int]]]:
    """Each scanned server's last scan: when, and its findings then by severity."""
    names = list(servers)
    if not names:
        return {}
    marks = ",".join("?" * len(names))
    found = store.rows(
        "SELECT server, found_at, severity, COUNT(*) AS n FROM findings f"
        f" WHERE server IN ({marks}) AND found_at ="
        " (SELECT MAX(found_at) FROM findings g WHERE g.server = f.server)"
        " GROUP BY server, found_at, severity",
        tuple(names),
    )
    cached = store.rows(
        f"SELECT server, updated_at FROM hash_caches WHERE server IN ({marks})", tuple(names)
    )
    result: dict[str, tuple[str, dict[str, int]]] = {
        r["server"]: (r["updated_at"], _counts(())) for r in cached
    }
    for r in found:
        when, counts = result.get(r["server"], ("", _counts(())))
        if r["found_at"] > when:
            when, counts = r["found_at"], _counts(())
        if r["found_at"] == when:
            counts[r["severity"]] += int(r["n"])
        result[r["server"]] = (when, counts)
    return result


def _counts(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    return {severity.value: 0 for severity in Severity} | dict(pairs)


def schedule(name: str, action: str, cron: str, at: datetime) -> ScheduleRow:
    """The next runs of a cron expression after `at`, in the host's time zone as cron reads it."""
    from croniter import CroniterError, croniter  # here: only a fleet with schedules needs it

    try:
        it = croniter(cron, at.astimezone())
        upcoming = [it.get_next(datetime).isoformat() for _ in range(NEXT_RUNS)]
    except (CroniterError, ValueError) as exc:
        return ScheduleRow(name=name, action=action, cron=cron, next_runs=[], error=str(exc))
    return ScheduleRow(name=name, action=action, cron=cron, next_runs=upcoming)


def span(seconds: float | None) -> str:
    """A duration for people: '45s', '12m', '5h 3m', '3d 4h'; '-' for none."""
    if seconds is None:
        return "-"
    whole = int(max(0.0, seconds))
    days, hours, minutes = whole // 86400, whole % 86400 // 3600, whole % 3600 // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{whole}s"


def _run(r: RunRecord) -> RunRow:
    took = None
    if r.finished_at:
        took = max(0.0, seconds_since(r.started_at, datetime.fromisoformat(r.finished_at)))
    return RunRow(
        id=r.id,
        action=r.kind.value,
        outcome=r.status.value,
        started_at=r.started_at,
        finished_at=r.finished_at,
        duration_seconds=took,
    )

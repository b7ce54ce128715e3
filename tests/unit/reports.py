"""A recorded workspace for report tests: 3 fleets of 10 servers, images, runs and drift scans,
written straight into the store (no lab), at times relative to a fixed NOW."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from phoenix.config import Severity, load
from phoenix.drift import scan as scan_mod
from phoenix.drift.diff import Finding
from phoenix.drift.scan import ScanReport, ScanStatus, ServerScan
from phoenix.facts import ScanCache
from phoenix.state import Store
from phoenix.workspace import Workspace

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FLEETS = ("api", "db", "web")
EVIL = "<script>alert(1)</script>"  # a server name no one should see run

CONFIG = """
[images.base]
[fleets.api]
image = "base"
size = 10
listen_port = 8081
max_age = "7d"
[fleets.db]
image = "base"
size = 10
listen_port = 8082
[fleets.web]
image = "base"
size = 10
listen_port = 8083
max_age = "3d"
[schedules.web-nightly]
fleet = "web"
action = "rebuild"
cron = "0 3 * * *"
[schedules.web-drift]
fleet = "web"
action = "drift"
cron = "*/30 * * * *"
[schedules.api-weekly]
fleet = "api"
action = "rebuild"
cron = "15 4 * * 1"
"""


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def ago(**delta: float) -> str:
    return iso(NOW - timedelta(**delta))


def server_name(fleet: str, number: int) -> str:
    return EVIL if (fleet, number) == ("web", 10) else f"{fleet}-g1-{number}"


def recorded(tmp_path: Path, config: str = CONFIG) -> Workspace:
    """The workspace: web-g1-N is N days old (N = 1..10; web's 10th is named EVIL), api's and
    db's N hours; db's servers 9 and 10 are still starting. web has 12 runs, the newest of them
    still running; api one rolled back. Two drift scans: the older found things on web-g1-1 and
    web-g1-2, the newer found 2 high and 1 low on web-g1-2 and web-g1-1 clean."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "phoenix.toml").write_text(config)
    ws = Workspace(tmp_path / "phoenix.toml", load(tmp_path / "phoenix.toml"), tmp_path / "home")
    with Store.open(ws.home) as store, store.transaction() as db:
        db.execute(
            "INSERT INTO images (name, version, tag, status, template_sha256, built_at)"
            " VALUES ('base', 1, 'base-v001', 'ready', 't', ?),"
            " ('base', 2, 'base-v002', 'ready', 't', ?)",
            (ago(days=20), ago(days=2)),
        )
        for fleet in FLEETS:
            db.execute("INSERT INTO fleets (name, created_at) VALUES (?, ?)", (fleet, ago(days=30)))
            db.execute(
                "INSERT INTO generations (fleet, number, image_tag, created_at)"
                " VALUES (?, 1, 'base-v001', ?)",
                (fleet, ago(days=30)),
            )
            for n in range(1, 11):
                age = {"days": n} if fleet == "web" else {"hours": n}
                status = "starting" if fleet == "db" and n > 8 else "serving"
                db.execute(
                    "INSERT INTO servers (name, fleet, generation, address, image_tag, status,"
                    " created_at) VALUES (?, ?, 1, ?, 'base-v001', ?, ?)",
                    (server_name(fleet, n), fleet, f"10.213.0.{n}", status, ago(**age)),
                )
        for n in range(12):  # web: the newest (id 12) still running
            started = NOW - timedelta(days=12 - n)
            finished = None if n == 11 else iso(started + timedelta(seconds=60 + n))
            db.execute(
                "INSERT INTO runs (fleet, kind, status, started_at, finished_at, pid)"
                " VALUES ('web', 'rebuild', ?, ?, ?, 1)",
                ("running" if n == 11 else "succeeded", iso(started), finished),
            )
        db.execute(
            "INSERT INTO runs (fleet, kind, status, started_at, finished_at, pid)"
            " VALUES ('api', 'deploy', 'rolled_back', ?, ?, 1)",
            (ago(hours=5), ago(hours=4)),
        )
        _scans(store)
    return ws


def _finding(kind: str, subject: str, severity: Severity) -> Finding:
    return Finding(kind=kind, subject=subject, severity=severity)


def _scan(name: str, found: list[Finding]) -> ServerScan:
    status = ScanStatus.DRIFTED if found else ScanStatus.CLEAN
    return ServerScan(name=name, address="a", image="base-v001", fleet="web", status=status,
                      findings=found)  # fmt: skip


def _scans(store: Store) -> None:
    older = [
        _scan("web-g1-1", [_finding("file.modified", "/etc/motd", Severity.MEDIUM)]),
        _scan("web-g1-2", [_finding("file.added", "/etc/x", Severity.LOW)]),
    ]
    scan_mod._record(store, ScanReport(scanned_at=ago(hours=6), servers=older))
    newer = [
        _scan("web-g1-1", []),
        _scan(
            "web-g1-2",
            [
                _finding("ssh_key.added", "root", Severity.HIGH),
                _finding("user.added", "eve", Severity.HIGH),
                _finding("file.added", "/etc/y", Severity.LOW),
            ],
        ),
    ]
    caches = {"web-g1-1": ScanCache(), "web-g1-2": ScanCache()}
    scan_mod._record(store, ScanReport(scanned_at=ago(hours=1), servers=newer), caches)

"""Metrics for node_exporter's textfile collector (a `.prom` file), from a report.

`write_metrics(ws, path)` is what a run calls when it ends: the file is rebuilt from the store
and replaced whole (prometheus_client writes a temp file beside it and renames it over).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from phoenix.config import Severity
from phoenix.errors import ReportError
from phoenix.report.build import DueOf, Report, build
from phoenix.state import Store
from phoenix.workspace import Workspace

if TYPE_CHECKING:  # prometheus_client is imported when metrics are written: it is slow to import
    from prometheus_client import CollectorRegistry


def registry_of(report: Report, last_runs: Sequence[dict[str, str]] = ()) -> CollectorRegistry:
    """The report's gauges in a registry of their own (never the process-wide default one).

    `last_runs`: rows of fleet, action, outcome and at (ISO-8601), the latest run of each.
    """
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry(auto_describe=True)
    age = Gauge(
        "phoenix_server_age_seconds",
        "Seconds since the server was created.",
        ["fleet", "server", "image"],
        registry=registry,
    )
    findings = Gauge(
        "phoenix_drift_findings",
        "Findings of the server's last drift scan, by severity (absent: never scanned).",
        ["fleet", "server", "severity"],
        registry=registry,
    )
    servers = Gauge(
        "phoenix_fleet_servers",
        "Servers of the fleet: serving, size (declared), due (absent: no due policy).",
        ["fleet", "state"],
        registry=registry,
    )
    last_run = Gauge(
        "phoenix_last_run_timestamp_seconds",
        "When the fleet's last run of this action with this outcome ended (or started).",
        ["fleet", "action", "outcome"],
        registry=registry,
    )
    image_age = Gauge(
        "phoenix_image_age_seconds",
        "Seconds since the image was built (ready images and those live servers run).",
        ["image"],
        registry=registry,
    )
    for fleet in report.fleets:
        servers.labels(fleet.name, "serving").set(fleet.serving)
        servers.labels(fleet.name, "size").set(fleet.size)
        if fleet.due is not None:
            servers.labels(fleet.name, "due").set(fleet.due)
        for s in fleet.servers:
            age.labels(fleet.name, s.name, s.image).set(s.age_seconds)
            if s.last_scan is None:
                continue
            for severity in Severity:
                findings.labels(fleet.name, s.name, severity.value).set(
                    s.findings.get(severity.value, 0)
                )
    for row in last_runs:
        at = datetime.fromisoformat(row["at"]).timestamp()
        last_run.labels(row["fleet"], row["action"], row["outcome"]).set(at)
    for tag, seconds in report.images.items():
        image_age.labels(tag).set(seconds)
    return registry


def latest_runs(ws: Workspace, fleets: Sequence[str]) -> list[dict[str, str]]:
    """The latest run of each fleet, action and outcome: fleet, action, outcome, at."""
    if not fleets:
        return []
    marks = ",".join("?" * len(fleets))
    with Store.open(ws.home) as store:
        return store.rows(
            "SELECT fleet, kind AS action, status AS outcome,"
            " MAX(COALESCE(finished_at, started_at)) AS at FROM runs"
            f" WHERE fleet IN ({marks}) GROUP BY fleet, kind, status ORDER BY fleet, kind, status",
            tuple(fleets),
        )


def write(path: Path, report: Report, last_runs: Sequence[dict[str, str]] = ()) -> None:
    """Replace `path` with the report's metrics; readable by all (node_exporter runs as another
    user), as the metrics name no secret."""
    from prometheus_client import write_to_textfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry_of(report, last_runs))
        os.chmod(path, 0o644)
    except OSError as exc:
        raise ReportError(
            f"cannot write the metrics file {path}: {exc.strerror}",
            hint="name a file in a directory phoenix may write to",
        ) from None


def write_metrics(
    ws: Workspace,
    path: Path,
    due_of: DueOf | None = None,
    now: datetime | None = None,
) -> Report:
    """Rebuild the metrics file `path` of every fleet from the store; return the report built.

    The schedule runner calls this after every run."""
    report = build(ws, now=now, due_of=due_of)
    write(path, report, latest_runs(ws, [f.name for f in report.fleets]))
    return report

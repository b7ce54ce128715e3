"""`phoenix schedule run NAME`: what cron calls. It takes the schedule's action on its fleet,
never asks anything, and ends with one summary line and an exit code:

    2026-12-03T03:00:02Z schedule nightly-web: rebuild web succeeded in 84 s, 3 replaced (exit 0)

The CLI prints the line last; cron's redirect appends it to the schedule's log.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from phoenix import ops
from phoenix.config import ScheduleConfig
from phoenix.drift.scan import ScanReport
from phoenix.errors import ExitCode, NotFound, PhoenixError
from phoenix.events import Emit, discard
from phoenix.fleet.plan import Options, Result, RolloutStatus
from phoenix.report.metrics import write_metrics
from phoenix.schedule import history
from phoenix.state import RunKind, Store
from phoenix.workspace import Workspace


@dataclass(frozen=True, kw_only=True)
class ScheduleRun:
    schedule: str
    action: str
    fleet: str
    started_at: str  # UTC, ISO-8601 to the second
    seconds: float
    exit_code: ExitCode
    summary: str  # the one line: when, what, how it ended, the exit code

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": int(self.exit_code)}


def rebuild_options(schedule: ScheduleConfig) -> Options:
    """THE place a scheduled rebuild's options are built (what a rebuild by hand takes as
    flags). A scheduled rebuild follows the policy: `phoenix rebuild FLEET --due` (servers past
    max_age, on a revoked or older image, or drifted at the fleet's replace_on)."""
    return Options(due=True)


@dataclass(frozen=True)
class _Ended:
    """How an action ended: `verb` (succeeded, rolled back...), then `detail` after its time."""

    verb: str
    detail: str
    code: ExitCode


def run(ws: Workspace, name: str, emit: Emit = discard) -> ScheduleRun:
    """Take schedule `name`'s action on its fleet; a PhoenixError is its outcome, not raised."""
    schedule = _declared(ws, name)
    started = datetime.now(UTC)
    clock = time.monotonic()
    with Store.open(ws.home) as store:
        before = history.newest_id(store)
    try:
        ended = _take(ws, schedule, emit)
    except PhoenixError as exc:
        ended = _Ended("failed", f": {' '.join(exc.message.split())}", exc.exit_code)
    with Store.open(ws.home) as store:
        history.mark(store, name, RunKind(schedule.action), before)
    ended = _metrics_refreshed(ws, ended)
    seconds = time.monotonic() - clock
    at = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = (
        f"{at} schedule {name}: {schedule.action} {schedule.fleet} {ended.verb}"
        f" in {seconds:.0f} s{ended.detail} (exit {int(ended.code)})"
    )
    return ScheduleRun(
        schedule=name, action=schedule.action, fleet=schedule.fleet, started_at=at,
        seconds=round(seconds, 1), exit_code=ended.code, summary=summary,
    )  # fmt: skip


METRICS = "metrics.prom"  # in the state directory; point node_exporter's textfile collector at it


def metrics_file(ws: Workspace) -> Path:
    return ws.home / METRICS


def _metrics_refreshed(ws: Workspace, ended: _Ended) -> _Ended:
    """The metrics file written again after the run; a failure to write it is said in the
    summary (the run's own outcome stands)."""
    try:
        write_metrics(ws, metrics_file(ws), due_of=lambda fleet: ops.due(ws, fleet))
    except PhoenixError as exc:
        return replace(ended, detail=f"{ended.detail}; metrics not written: {exc.message}")
    return ended


def _declared(ws: Workspace, name: str) -> ScheduleConfig:
    if name not in ws.config.schedules:
        known = ", ".join(sorted(ws.config.schedules)) or "none"
        raise NotFound(f"no schedule {name} in {ws.config_file}", hint=f"defined: {known}")
    return ws.config.schedules[name]


def _take(ws: Workspace, schedule: ScheduleConfig, emit: Emit) -> _Ended:
    if schedule.action == "drift":
        return _drifted(ops.drift(ws, [schedule.fleet], emit))
    opts = rebuild_options(schedule)
    return _rebuilt(ops.run(ws, schedule.fleet, RunKind.REBUILD, opts, emit))


def _rebuilt(result: Result) -> _Ended:
    warned = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    if result.status is RolloutStatus.ROLLED_BACK:
        return _Ended("rolled back", f": {result.reason}{warned}", ExitCode.FAILED)
    if result.status is RolloutStatus.NOTHING:
        return _Ended(
            "had nothing to do", f": {result.reason}" if result.reason else "", ExitCode.OK
        )
    return _Ended("succeeded", f", {len(result.removed)} replaced{warned}", ExitCode.OK)


def _drifted(report: ScanReport) -> _Ended:
    code = report.exit_code
    counts = Counter(s.status.value for s in report.servers)
    shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no servers"
    problems = f", {len(report.problems)} problem(s)" if report.problems else ""
    verb = {ExitCode.OK: "was clean", ExitCode.FAILED: "found drift"}.get(code, "was incomplete")
    return _Ended(verb, f": {shown}{problems}", code)

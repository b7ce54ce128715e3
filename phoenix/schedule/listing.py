"""`phoenix schedule list`: each schedule with its next runs, its last run, and whether cron
holds it as declared."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from phoenix.schedule import entry, history
from phoenix.schedule.cron import Held, Table, Target, as_declared, default_target
from phoenix.schedule.history import LastRun
from phoenix.state import Store
from phoenix.workspace import Workspace

NEXT_RUNS = 3


class CronState(StrEnum):
    INSTALLED = "installed"  # cron holds it as declared
    MISSING = "missing"  # cron does not hold it: run `phoenix schedule apply`
    DIFFERENT = "different"  # cron holds another time or command: run `phoenix schedule apply`


@dataclass(frozen=True, kw_only=True)
class ScheduleView:
    name: str
    fleet: str
    action: str
    cron: str
    next_runs: list[str]  # local time, ISO-8601
    last: LastRun | None
    state: CronState

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def schedules(
    ws: Workspace, target: Target | None = None, now: datetime | None = None
) -> list[ScheduleView]:
    """Every declared schedule, in name order; `now` (default: the current local time) is where
    its next runs are counted from."""
    start = now or datetime.now().astimezone()
    held = Table(target or default_target(ws.home)).held(entry.tag_prefix(ws.home))
    with Store.open(ws.home) as store:
        return [
            ScheduleView(
                name=want.name,
                fleet=ws.config.schedules[want.name].fleet,
                action=ws.config.schedules[want.name].action,
                cron=want.cron,
                next_runs=next_runs(want.cron, start),
                last=history.last(store, want.name),
                state=_state(want, held.get(want.tag, [])),
            )
            for want in entry.wanted(ws)
        ]


def next_runs(cron: str, start: datetime, count: int = NEXT_RUNS) -> list[str]:
    from croniter import croniter  # here: it is slow to import

    times = croniter(cron, start)
    return [times.get_next(datetime).isoformat() for _ in range(count)]


def _state(want: entry.Entry, held: list[Held]) -> CronState:
    if not held:
        return CronState.MISSING
    if as_declared(held, want):
        return CronState.INSTALLED
    return CronState.DIFFERENT

"""`phoenix schedule apply`: cron holds exactly the schedules phoenix.toml declares.

Each declared schedule is written (or rewritten when its time or command changed), and every
entry of this workspace the config no longer declares is removed. Lines phoenix does not own
stay. Idempotent: a second apply changes nothing and writes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from phoenix.schedule import entry
from phoenix.schedule.cron import Held, Table, Target, as_declared, default_target
from phoenix.workspace import Workspace


class Action(StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Applied:
    """What apply did to one schedule's entry."""

    name: str
    action: Action
    cron: str
    command: str


@dataclass(frozen=True)
class ApplyReport:
    target: str  # the crontab written: a file, or the user's crontab
    schedules: list[Applied]

    @property
    def changed(self) -> bool:
        return any(a.action is not Action.UNCHANGED for a in self.schedules)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def apply(ws: Workspace, target: Target | None = None) -> ApplyReport:
    """Make cron hold the config's schedules (in `target`, default: see cron.default_target)."""
    table = Table(target or default_target(ws.home))
    prefix = entry.tag_prefix(ws.home)
    held = table.held(prefix)
    done: list[Applied] = []
    for want in entry.wanted(ws):
        action = _action(want, held.pop(want.tag, []))
        if action is not Action.UNCHANGED:
            table.put(want)
        done.append(Applied(want.name, action, want.cron, want.command))
    for tag, gone in sorted(held.items()):
        table.drop(tag)
        done.append(
            Applied(tag.removeprefix(prefix), Action.REMOVED, gone[0].cron, gone[0].command)
        )
    report = ApplyReport(str(table.target), done)
    if report.changed:
        entry.log_path(ws.home, "").parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        table.save()
    return report


def _action(want: entry.Entry, held: list[Held]) -> Action:
    if not held:
        return Action.ADDED
    if as_declared(held, want):
        return Action.UNCHANGED
    return Action.CHANGED

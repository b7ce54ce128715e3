"""What cron holds for a schedule: its expression, the command it runs, and the tag naming it.

Every entry phoenix owns carries the tag `phoenix:WORKSPACE-ID:NAME` (a comment on its line), so
that two checkouts (two state directories) on one machine never touch each other's entries, and
a line written by hand is never touched at all.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from phoenix.workspace import Workspace

TAG = "phoenix"
LOG_DIR = "logs"


def workspace_id(home: Path) -> str:
    """A short id of the state directory, stable for as long as it stays where it is."""
    return hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:8]


def tag_prefix(home: Path) -> str:
    """What begins the tag of every entry of the workspace whose state directory is `home`."""
    return f"{TAG}:{workspace_id(home)}:"


def tag(home: Path, name: str) -> str:
    return tag_prefix(home) + name


def log_path(home: Path, name: str) -> Path:
    """Where cron's runs of schedule `name` write their output."""
    return home.resolve() / LOG_DIR / f"schedule-{name}.log"


@dataclass(frozen=True)
class Entry:
    """One line of cron: at `cron`, run `command`; `tag` names it."""

    name: str
    cron: str
    command: str
    tag: str


def command(ws: Workspace, name: str) -> str:
    """The shell command cron runs for schedule `name`: every path absolute and quoted, its
    output appended to the schedule's log."""
    config = ws.config_file.resolve()
    home = ws.home.resolve()
    q = shlex.quote
    return (
        f"cd {q(str(config.parent))} && PHOENIX_HOME={q(str(home))} {q(sys.executable)}"
        f" -m phoenix --config {q(str(config))} schedule run {q(name)}"
        f" >> {q(str(log_path(home, name)))} 2>&1"
    )


def wanted(ws: Workspace) -> list[Entry]:
    """The entries the config declares, one per schedule, in name order."""
    return [
        Entry(name, ws.config.schedules[name].cron, command(ws, name), tag(ws.home, name))
        for name in sorted(ws.config.schedules)
    ]

"""What every command group shares: the workspace from the global options, the one confirmation
of destructive commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from phoenix.errors import Refused

if TYPE_CHECKING:
    from phoenix.workspace import Workspace


def workspace(ctx: typer.Context) -> Workspace:
    from phoenix.workspace import Workspace  # here: it loads the config's models (pydantic)

    explicit: Path | None = (ctx.obj or {}).get("config")
    return Workspace.open(explicit)


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


def terminal() -> bool:
    """Whether a person may be there to answer: stdin is a terminal."""
    return sys.stdin.isatty()


def confirm(yes: bool, question: str, what: str) -> None:
    """Go ahead with a destructive command only if the operator said so: `--yes`, or yes to
    `question` on a terminal. Without a terminal (cron, CI) and without --yes, refuse: one line
    naming `what` would have been done and `--yes` (exit REFUSED, nothing done)."""
    if yes:
        return
    if not terminal():
        raise Refused(f"refused to {what} without a terminal to confirm on: pass --yes to do it")
    if not typer.confirm(question, default=False):
        raise Refused(f"not confirmed: did not {what}")

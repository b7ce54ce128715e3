"""What every command group shares: the workspace from the global options."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from phoenix.workspace import Workspace


def workspace(ctx: typer.Context) -> Workspace:
    explicit: Path | None = (ctx.obj or {}).get("config")
    return Workspace.open(explicit)


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def confirm(yes: bool, question: str) -> None:
    """Ask `question` on a terminal unless --yes; without a terminal (cron, CI) go ahead."""
    if not yes and sys.stdin.isatty():
        typer.confirm(question, abort=True)

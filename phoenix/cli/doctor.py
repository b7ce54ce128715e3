"""`phoenix doctor`: what is missing, and how to fix it."""

from __future__ import annotations

import dataclasses

import typer

from phoenix.cli import render
from phoenix.cli.common import JSON_OPTION, workspace
from phoenix.errors import ExitCode

# The core is imported inside each command, not here: `phoenix --help` and every other command
# would pay for importing it (see tests/unit/test_startup.py).


def command(ctx: typer.Context, json: bool = JSON_OPTION) -> None:
    """Check every prerequisite; exit 1 if anything required is missing."""
    from phoenix.lab import doctor

    checks = doctor.diagnose(workspace(ctx))
    if json:
        render.as_json([dataclasses.asdict(c) for c in checks])
    else:
        rows = [(c.name, render.ok_mark(c.ok), c.detail, c.fix) for c in checks]
        render.table("phoenix doctor", ["check", "state", "detail", "fix"], rows)
    if not doctor.healthy(checks):
        raise typer.Exit(ExitCode.FAILED)

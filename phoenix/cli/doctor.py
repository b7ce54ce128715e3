"""`phoenix doctor`: what is missing, and how to fix it."""

from __future__ import annotations

import dataclasses

import typer

from phoenix.cli import render
from phoenix.cli.common import JSON_OPTION, workspace
from phoenix.errors import ExitCode
from phoenix.lab import doctor


def command(ctx: typer.Context, json: bool = JSON_OPTION) -> None:
    """Check every prerequisite; exit 1 if anything required is missing."""
    checks = doctor.diagnose(workspace(ctx))
    if json:
        render.as_json([dataclasses.asdict(c) for c in checks])
    else:
        rows = [(c.name, render.ok_mark(c.ok), c.detail, c.fix) for c in checks]
        render.table("phoenix doctor", ["check", "state", "detail", "fix"], rows)
    if not doctor.healthy(checks):
        raise typer.Exit(ExitCode.FAILED)

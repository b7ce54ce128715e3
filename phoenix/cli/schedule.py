"""`phoenix schedule apply | list | run`: the recurring work phoenix.toml declares, held by cron."""

from __future__ import annotations

import typer

from phoenix.cli import render
from phoenix.cli.common import JSON_OPTION, workspace

# The core is imported inside each command (see phoenix/cli/doctor.py).

app = typer.Typer(help="Schedules: [schedules] of phoenix.toml, held by cron.")


@app.command()
def apply(ctx: typer.Context, json: bool = JSON_OPTION) -> None:
    """Make cron hold exactly the declared schedules (removes this checkout's others)."""
    from phoenix.schedule import install

    report = install.apply(workspace(ctx))
    render.as_json(report.as_dict()) if json else render.schedules_applied(report)


@app.command("list")
def list_(ctx: typer.Context, json: bool = JSON_OPTION) -> None:
    """Each schedule: its next runs, its last run, whether cron holds it as declared."""
    from phoenix.schedule import listing

    views = listing.schedules(workspace(ctx))
    render.as_json([v.as_dict() for v in views]) if json else render.schedules(views)


@app.command()
def run(ctx: typer.Context, name: str, json: bool = JSON_OPTION) -> None:
    """Take schedule NAME's action now, as cron does: no question asked, one summary line."""
    from phoenix.schedule import run as scheduled

    ws = workspace(ctx)
    with render.Progress() as progress:
        outcome = scheduled.run(ws, name, emit=progress)
    render.as_json(outcome.as_dict()) if json else render.line(outcome.summary)
    raise typer.Exit(outcome.exit_code)

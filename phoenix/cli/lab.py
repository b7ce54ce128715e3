"""`phoenix lab up | status | down`: the local LXD lab."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from phoenix.cli import render
from phoenix.cli.common import JSON_OPTION, confirm, workspace
from phoenix.errors import ExitCode
from phoenix.events import Outcome

# The core is imported inside each command (see phoenix/cli/doctor.py).
if TYPE_CHECKING:
    from phoenix.lab.lab import StepResult

app = typer.Typer(help="The local LXD lab: daemon, storage pool, bridges, base image.")


@app.command()
def up(ctx: typer.Context) -> None:
    """Bring the lab up, repairing whatever is missing. Safe to run again."""
    from phoenix.lab.lab import Lab

    ws = workspace(ctx)
    with render.Progress() as progress:
        results = Lab.of_workspace(ws, progress).up()
    _summary(results, "lab is up")


@app.command()
def status(ctx: typer.Context, json: bool = JSON_OPTION) -> None:
    """Show the daemon, pool, network, base image and servers."""
    from phoenix.lab.lab import Lab

    ws = workspace(ctx)
    report = Lab.of_workspace(ws).status()
    if json:
        render.as_json(report.as_dict())
    else:
        rows = [(c.name, render.ok_mark(c.ok), c.detail) for c in report.components]
        render.table("lab", ["part", "state", "detail"], rows)
        servers = [(s.name, s.status, s.address or "-") for s in report.servers]
        render.table(f"servers ({len(servers)})", ["name", "status", "address"], servers)
    if not report.up:
        raise typer.Exit(ExitCode.FAILED)


@app.command()
def down(
    ctx: typer.Context,
    purge: bool = typer.Option(
        False, help="Also delete phoenix's servers and images, its pool and bridges, and the state."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before --purge."),
) -> None:
    """Stop the lab's servers and the daemon (with --purge, remove everything)."""
    from phoenix.lab.lab import Lab

    ws = workspace(ctx)
    if purge:
        confirm(
            yes,
            f"Delete phoenix's servers and images, the lab's pool and bridges (if nothing else "
            f"uses them) and the state in {ws.home}?",
            "purge the lab",
        )
    with render.Progress() as progress:
        results = Lab.of_workspace(ws, progress).down(purge=purge)
    _summary(results, "lab is down")


def _summary(results: list[StepResult], done: str) -> None:
    changed = [r.step for r in results if r.outcome is Outcome.DONE]
    render.line(f"{done}: " + (f"changed {', '.join(changed)}" if changed else "nothing to change"))

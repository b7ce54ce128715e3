"""`phoenix deploy | rebuild | status | destroy | history`: fleets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from phoenix.cli import render
from phoenix.cli.common import JSON_OPTION, YES_OPTION, confirm, workspace
from phoenix.errors import ExitCode
from phoenix.state import RunKind

# The core is imported inside each command (see phoenix/cli/doctor.py).
if TYPE_CHECKING:
    from phoenix.fleet.plan import Options

YES = YES_OPTION
DRY = typer.Option(False, "--dry-run", help="Print the plan and change nothing.")
NO_OBSERVE = typer.Option(
    False,
    "--no-observe",
    help="Emergencies: skip the fleet's observation window (batches are not judged on live"
    " traffic); the run's history says so.",
)


def deploy(
    ctx: typer.Context,
    name: str,
    dry_run: bool = DRY,
    no_observe: bool = NO_OBSERVE,
    yes: bool = YES,
    json: bool = JSON_OPTION,
) -> None:
    """Create fleet NAME, or bring it back to its size: top it up from its newest ready image, or
    drain and remove the servers beyond it (those on an older image, then the oldest, first).
    Removing servers is asked first, as a rebuild is (--yes without a terminal)."""
    from phoenix.fleet.plan import Options

    _run(ctx, name, RunKind.DEPLOY, Options(observe=not no_observe), dry_run, yes, json)


def rebuild(
    ctx: typer.Context,
    name: str,
    image: str | None = typer.Option(None, help="Image tag to deploy (default: newest ready)."),
    older_than: str | None = typer.Option(None, help="Only servers older than this: 90m, 24h, 7d."),
    only: list[str] | None = typer.Option(None, help="Only these servers (repeatable)."),
    strategy: str | None = typer.Option(None, help="rolling or blue-green (default: config)."),
    batch: int | None = typer.Option(None, help="Servers replaced at once (default: config)."),
    due: bool = typer.Option(
        False,
        "--due",
        help="Only the servers due: older than max_age, from a revoked or older image, or"
        " drifted at or above replace_on (the nightly policy). None due: nothing done.",
    ),
    dry_run: bool = DRY,
    no_observe: bool = NO_OBSERVE,
    yes: bool = YES,
    json: bool = JSON_OPTION,
) -> None:
    """Replace servers of fleet NAME with fresh ones: health-gated, no request dropped."""
    from phoenix.fleet.plan import Options

    opts = Options(
        image=image,
        older_than=older_than,
        only=tuple(only or ()),
        strategy=strategy,
        batch=batch,
        due=due,
        observe=not no_observe,
    )
    _run(ctx, name, RunKind.REBUILD, opts, dry_run, yes, json)


def status(ctx: typer.Context, name: str, json: bool = JSON_OPTION) -> None:
    """Servers of fleet NAME: address, image, generation, age, health; whether it is at its size."""
    from phoenix import ops

    report = ops.status(workspace(ctx), name)
    if json:
        render.as_json(report.as_dict())
    else:
        render.fleet_status(report)


def destroy(ctx: typer.Context, name: str, yes: bool = YES) -> None:
    """Remove every server of fleet NAME and its load balancer."""
    from phoenix import ops

    ws = workspace(ctx)
    confirm(yes, f"Destroy every server of {name}?", f"destroy fleet {name}")
    with render.Progress() as progress:
        result = ops.destroy(ws, name, emit=progress)
    render.line(f"destroyed {name}: removed {len(result.removed)} server(s)")


def history(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only this fleet."),
    json: bool = JSON_OPTION,
) -> None:
    """Every run: its steps and outcome."""
    from phoenix import ops

    runs = ops.history(workspace(ctx), name)
    if json:
        render.as_json([r.as_dict() for r in runs])
    else:
        render.history(runs)


def _run(
    ctx: typer.Context,
    name: str,
    kind: RunKind,
    opts: Options,
    dry_run: bool,
    yes: bool,
    json: bool,
) -> None:
    from phoenix import ops
    from phoenix.fleet.plan import RolloutStatus

    ws = workspace(ctx)
    plan = ops.plan(ws, name, kind, opts)
    if dry_run:
        render.as_json(plan.as_dict()) if json else render.plan(plan)
        return
    removes = any(batch.remove for batch in plan.batches)
    if not plan.empty and (kind is not RunKind.DEPLOY or removes):
        render.plan(plan, console=render.err)
        confirm(yes, "Go ahead?", f"{kind.value} fleet {name}")
    with render.Progress() as progress:
        result = ops.run(ws, name, kind, opts, emit=progress)
    render.as_json(result.as_dict()) if json else render.result(result)
    if result.status is RolloutStatus.ROLLED_BACK:
        raise typer.Exit(ExitCode.FAILED)

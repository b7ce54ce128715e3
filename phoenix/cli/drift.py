"""`phoenix drift [scan] [FLEET…] | changes | rules | evidence SERVER [PATH] | promote SERVER`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from phoenix import ages
from phoenix.cli import render
from phoenix.cli.common import JSON_OPTION, YES_OPTION, confirm, workspace
from phoenix.text import printable

# The core is imported inside each command (see phoenix/cli/doctor.py).
if TYPE_CHECKING:
    from phoenix.drift.scan import ScanReport
    from phoenix.workspace import Workspace


class ScanByDefault(TyperGroup):
    """`phoenix drift web` is `phoenix drift scan web`: scan, unless the first word names a
    sub-command or asks for help (`phoenix drift scan rules` scans a fleet named rules)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: typer's click.Context
        first = args[0] if args else None
        if first not in self.commands and first not in ctx.help_option_names:
            args = ["scan", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=ScanByDefault,
    help="Find the snowflakes: servers that differ from their image.\n\n"
    "`phoenix drift [FLEET…]` is `phoenix drift scan [FLEET…]`.",
)

FLEETS = typer.Argument(None, metavar="FLEET", help="Fleets (default: all).")


@app.command("scan")
def scan_(
    ctx: typer.Context,
    fleets: list[str] | None = FLEETS,
    all_: bool = typer.Option(False, "--all", help="Scan every fleet."),
    json: bool = JSON_OPTION,
    junit: Path | None = typer.Option(None, help="Also write a JUnit XML report here."),
    html: Path | None = typer.Option(None, help="Also write an HTML report here."),
    fail_on: str | None = typer.Option(
        None, help="Lowest severity that fails: low, medium, high (default: config)."
    ),
    since: str | None = typer.Option(None, hidden=True, help="`phoenix drift changes --since`."),
    deep: bool = typer.Option(
        False, "--deep", help="Hash every file, even those unchanged since their last hash."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Then rebuild the drifted and untrusted servers (never patch)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Replace without asking."),
) -> None:
    """Compare live servers with their image's baseline (the default).

    Exit 0 clean, 1 drift, 2 unscanned.
    """
    from phoenix import ops
    from phoenix.config import Severity
    from phoenix.drift import report

    ws = workspace(ctx)
    if since:  # the old spelling of `phoenix drift changes --since`
        _changes(ws, since, fleets or [], json)
        return
    if fail_on not in (None, *Severity):
        raise typer.BadParameter("must be low, medium or high", param_hint="--fail-on")
    floor = Severity(fail_on) if fail_on else None
    with render.Progress() as progress:
        result = ops.drift(ws, [] if all_ else fleets or [], progress, floor, deep)
    if junit:
        report.write(junit, report.to_junit(result))
    if html:
        report.write(html, report.to_html(result))
    if replace:
        _replace(ws, result, yes, json)
    if json:
        render.as_json(result.as_dict())
    else:
        render.drift(result)
    raise typer.Exit(result.exit_code)


@app.command("changes")
def changes(
    ctx: typer.Context,
    since: str = typer.Option(..., metavar="AGE", help="How far back, e.g. 7d."),
    fleets: list[str] | None = FLEETS,
    json: bool = JSON_OPTION,
) -> None:
    """What appeared or went away in the recorded scans since AGE."""
    _changes(workspace(ctx), since, fleets or [], json)


@app.command("rules")
def rules(ctx: typer.Context, json: bool = JSON_OPTION) -> None:
    """The noise rules: paths and findings a scan ignores."""
    from phoenix.drift.diff import Rules

    patterns = Rules.with_extra(workspace(ctx).config.drift.ignore).patterns
    if json:
        render.as_json(list(patterns))
    else:
        render.table("drift noise rules", ["rule"], [(p,) for p in patterns])


@app.command("evidence")
def evidence_(
    ctx: typer.Context,
    server: str | None = typer.Argument(
        None, metavar="SERVER", help="A server's name, e.g. web-g1-1."
    ),
    path: str | None = typer.Argument(
        None, metavar="PATH", help="Print the archived copy of this file."
    ),
    purge: str | None = typer.Option(
        None, "--purge", metavar="SERVER", help="Delete what was archived of SERVER."
    ),
    older_than: str | None = typer.Option(
        None, "--older-than", metavar="AGE", help="Delete what was archived over AGE ago, e.g. 30d."
    ),
    yes: bool = YES_OPTION,
    json: bool = JSON_OPTION,
) -> None:
    """What was changed by hand on SERVER, as the scans archived it; or delete it (--purge,
    --older-than)."""
    from phoenix.drift import evidence

    ws = workspace(ctx)
    if purge is not None or older_than is not None:
        if server is not None:
            raise typer.BadParameter(
                "give the server to --purge, not as an argument", param_hint="SERVER"
            )
        _purge(ws, purge, older_than, yes, json)
        return
    if server is None:
        raise typer.BadParameter("name a server, e.g. web-g1-1", param_hint="SERVER")
    kept = evidence.lookup(ws, server, path)
    if json:
        render.as_json([k.as_dict() for k in kept])
    elif path is not None:
        render.raw(kept[0].text)
    else:
        render.evidence(server, kept)


def _purge(
    ws: Workspace, server: str | None, older_than: str | None, yes: bool, json: bool
) -> None:
    """Delete archived evidence; asks on a terminal, refuses without one unless --yes."""
    from phoenix.drift import evidence

    age = ages.parse_age(older_than, "--older-than") if older_than is not None else None
    what = f"of {server}" if server else "of every server"
    what += f" archived over {older_than} ago" if older_than else ""
    confirm(yes, f"Delete the evidence {what}?", f"delete the evidence {what}")
    done = evidence.purge(ws, server, age)
    if json:
        render.as_json(done.as_dict())
    else:
        render.line(f"removed {done.contents} archived content(s) {what}"
                    f" ({done.links} finding(s) unlinked)")  # fmt: skip


@app.command("promote")
def promote_(
    ctx: typer.Context,
    server: str = typer.Argument(
        ..., metavar="SERVER", help="A serving server's name, e.g. web-g1-1."
    ),
    paths: list[str] | None = typer.Option(
        None,
        "--path",
        help="Only drifted files at or under this path (repeat). A HIGH one (setuid, a binary, "
        "SSH keys, PAM, sudoers, cron) only when named exactly, and confirmed.",
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Promote the named HIGH paths without asking."
    ),
    json: bool = JSON_OPTION,
) -> None:
    """Write SERVER's drifted files into its image's template; print what changed."""
    from phoenix.drift.promote import promote

    ws = workspace(ctx)

    def approve(high: Sequence[promote.High]) -> None:
        named = ", ".join(f"{printable(h.path)} ({h.why})" for h in high)
        question = f"Promote {named} into the image? A HIGH change is how a break-in looks."
        confirm(yes, question, f"promote {named} (HIGH)")

    with render.Progress() as progress:
        done = promote.promote(ws, server, paths or [], emit=progress, approve=approve)
    if json:
        render.as_json(done.as_dict())
        return
    render.promotion(done)


def _changes(ws: Workspace, since: str, fleets: list[str], json: bool) -> None:
    from phoenix.drift import scan

    found = scan.changes_since(ws, since, fleets)
    render.as_json([c.as_dict() for c in found]) if json else render.drift_changes(found)


def _replace(ws: Workspace, result: ScanReport, yes: bool, json: bool) -> None:
    """Rebuild what drifted; exit with the rollout's outcome (0 when every one was replaced)."""
    from phoenix import ops

    chosen = ops.to_replace(result)
    if not json:
        render.drift(result)
    if not chosen:
        if json:
            render.as_json({"scan": result.as_dict(), "replaced": []})
        raise typer.Exit(result.exit_code)
    names = ", ".join(n for servers in chosen.values() for n in servers)
    confirm(yes, f"Replace {names} with new servers from the current image?", f"replace {names}")
    with render.Progress() as progress:
        outcomes = ops.replace_drifted(ws, result, chosen, emit=progress)
    if json:
        render.as_json({"scan": result.as_dict(), "replaced": [o.as_dict() for o in outcomes]})
    else:
        for outcome in outcomes:
            render.result(outcome)
    raise typer.Exit(ops.replace_exit_code(result, outcomes))

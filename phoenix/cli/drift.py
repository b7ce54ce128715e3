"""`phoenix drift [FLEET…]`, and `drift rules | evidence SERVER [PATH] | promote SERVER`."""

from __future__ import annotations

from pathlib import Path

import typer

from phoenix import ops
from phoenix.cli import render
from phoenix.cli.common import JSON_OPTION, confirm, workspace
from phoenix.config import Severity
from phoenix.drift import evidence, report, scan
from phoenix.drift.diff import Rules
from phoenix.drift.promote import promote
from phoenix.errors import Refused
from phoenix.workspace import Workspace


def command(
    ctx: typer.Context,
    fleets: list[str] | None = typer.Argument(
        None,
        help="Fleets to scan (default: all). `phoenix drift rules` shows the noise rules;"
        " `phoenix drift promote SERVER` writes its drifted files into its image's template.",
    ),
    all_: bool = typer.Option(False, "--all", help="Scan every fleet."),
    json: bool = JSON_OPTION,
    junit: Path | None = typer.Option(None, help="Also write a JUnit XML report here."),
    html: Path | None = typer.Option(None, help="Also write an HTML report here."),
    fail_on: str | None = typer.Option(
        None, help="Lowest severity that fails: low, medium, high (default: config)."
    ),
    since: str | None = typer.Option(
        None, help="Scan nothing; show what appeared or went away between the scans of, e.g., 7d."
    ),
    deep: bool = typer.Option(
        False, "--deep", help="Hash every file, even those unchanged since their last hash."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Then rebuild the drifted and untrusted servers (never patch)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Replace without asking."),
    paths: list[str] | None = typer.Option(
        None, "--path", help="With `promote`: only drifted files at or under this path (repeat)."
    ),
) -> None:
    """Compare every live server with its image's baseline. Exit 0 clean, 1 drift, 2 unscanned.

    `phoenix drift rules`: the noise rules.
    `phoenix drift evidence SERVER [PATH]`: what was changed by hand, as the scans archived it.
    `phoenix drift promote SERVER [--path P]`: its drifted files into its image's template.
    """
    ws = workspace(ctx)
    if fleets and fleets[0] == "promote":
        _promote(ws, fleets[1:], paths or [], json)
        return
    if paths:
        raise Refused("--path only goes with `phoenix drift promote SERVER`")
    if fleets and fleets[0] == "rules":
        _rules(Rules.with_extra(ws.config.drift.ignore), json)
        return
    if fleets and fleets[0] == "evidence":
        _evidence(ws, fleets[1:], json)
        return
    if since:
        changes = scan.changes_since(ws, since, fleets or [])
        render.as_json([c.as_dict() for c in changes]) if json else render.drift_changes(changes)
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


def _replace(ws: Workspace, result: scan.ScanReport, yes: bool, json: bool) -> None:
    """Rebuild what drifted; exit with the rollout's outcome (0 when every one was replaced)."""
    chosen = ops.to_replace(result)
    if not json:
        render.drift(result)
    if not chosen:
        if json:
            render.as_json({"scan": result.as_dict(), "replaced": []})
        raise typer.Exit(result.exit_code)
    names = ", ".join(n for servers in chosen.values() for n in servers)
    confirm(yes, f"Replace {names} with new servers from the current image?")
    with render.Progress() as progress:
        outcomes = ops.replace_drifted(ws, result, chosen, emit=progress)
    if json:
        render.as_json({"scan": result.as_dict(), "replaced": [o.as_dict() for o in outcomes]})
    else:
        for outcome in outcomes:
            render.result(outcome)
    raise typer.Exit(ops.replace_exit_code(result, outcomes))


def _evidence(ws: Workspace, args: list[str], json: bool) -> None:
    if not 1 <= len(args) <= 2:
        raise typer.BadParameter("usage: phoenix drift evidence SERVER [PATH]")
    server, path = args[0], (args[1] if len(args) == 2 else None)
    kept = evidence.lookup(ws, server, path)
    if json:
        render.as_json([k.as_dict() for k in kept])
    elif path is not None:
        render.raw(kept[0].text)
    else:
        render.evidence(server, kept)


def _rules(rules: Rules, json: bool) -> None:
    if json:
        render.as_json(list(rules.patterns))
    else:
        render.table("drift noise rules", ["rule"], [(p,) for p in rules.patterns])


def _promote(ws: Workspace, servers: list[str], paths: list[str], json: bool) -> None:
    if len(servers) != 1:
        raise Refused("promote takes one server", hint="phoenix drift promote SERVER [--path P]")
    with render.Progress() as progress:
        done = promote.promote(ws, servers[0], paths, emit=progress)
    render.as_json(done.as_dict()) if json else render.promotion(done)

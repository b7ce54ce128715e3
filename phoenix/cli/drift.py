"""`phoenix drift [FLEET…] | rules | promote SERVER`: snowflakes on live servers."""

from __future__ import annotations

from pathlib import Path

import typer

from phoenix import promote, report, scan
from phoenix.cli import render
from phoenix.cli.common import JSON_OPTION, workspace
from phoenix.drift import Rules
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
    paths: list[str] | None = typer.Option(
        None, "--path", help="With `promote`: only drifted files at or under this path (repeat)."
    ),
) -> None:
    """Compare every live server with its image's baseline. Exit 0 clean, 1 drift, 2 unscanned."""
    ws = workspace(ctx)
    if fleets and fleets[0] == "promote":
        _promote(ws, fleets[1:], paths or [], json)
        return
    if paths:
        raise Refused("--path only goes with `phoenix drift promote SERVER`")
    if fleets == ["rules"]:
        _rules(Rules.with_extra(ws.config.drift.ignore), json)
        return
    if since:
        changes = scan.changes_since(ws, since, fleets or [])
        render.as_json([c.as_dict() for c in changes]) if json else render.drift_changes(changes)
        return
    if fail_on not in (None, "low", "medium", "high"):
        raise typer.BadParameter("must be low, medium or high", param_hint="--fail-on")
    with render.Progress() as progress:
        result = scan.scan(ws, [] if all_ else fleets or [], emit=progress, fail_on=fail_on)
    if junit:
        report.write(junit, report.to_junit(result))
    if html:
        report.write(html, report.to_html(result))
    if json:
        render.as_json(result.as_dict())
    else:
        render.drift(result)
    raise typer.Exit(result.exit_code)


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

"""`phoenix report`: every fleet's servers, ages, drift, due servers, schedules and runs."""

from __future__ import annotations

from pathlib import Path

import typer

from phoenix.cli import render
from phoenix.cli.common import JSON_OPTION, workspace

# The core is imported inside the command (see phoenix/cli/doctor.py).


def command(
    ctx: typer.Context,
    fleets: list[str] | None = typer.Argument(None, help="Only these fleets (default: all)."),
    html: Path | None = typer.Option(None, "--html", help="Also write it to this HTML file."),
    metrics_file: Path | None = typer.Option(
        None, "--metrics", help="Also write metrics to this file (node_exporter textfile, .prom)."
    ),
    json: bool = JSON_OPTION,
) -> None:
    """Report on fleets: servers and their ages, drift findings, next and last runs."""
    from phoenix import ops
    from phoenix.report import build, metrics, write_html

    ws = workspace(ctx)
    report = build(ws, tuple(fleets or ()), due_of=lambda name: ops.due(ws, name))
    if html:
        write_html(html, report)
        render.note(f"wrote the HTML report to {html}")
    if metrics_file:
        runs = metrics.latest_runs(ws, [f.name for f in report.fleets])
        metrics.write(metrics_file, report, runs)
        render.note(f"wrote the metrics to {metrics_file}")
    if json:
        render.as_json(report.as_dict())
    else:
        render.report(report)

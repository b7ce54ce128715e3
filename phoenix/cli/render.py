"""All terminal output: progress of long steps, tables, JSON, errors. The only module using rich."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

from phoenix import ages
from phoenix.config import Severity
from phoenix.drift.evidence import Archived, is_archived
from phoenix.drift.evidence import label as evidence_label
from phoenix.drift.promote.promote import Promotion
from phoenix.drift.scan import Change, ScanReport, ScanStatus
from phoenix.events import Event, Outcome, StepFinished, StepOutput, StepStarted
from phoenix.fleet.plan import FleetStatus, Plan, Result, RolloutStatus
from phoenix.image.registry import ImageView
from phoenix.ops import RunHistory
from phoenix.state import RunStatus

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

MARKS = {
    Outcome.DONE: "[green]✓[/]",
    Outcome.UNCHANGED: "[dim]·[/]",
    Outcome.FAILED: "[red]✗[/]",
    Outcome.SKIPPED: "[dim]-[/]",
}


@dataclass
class Progress:
    """Renders core events: a spinner and the latest output line on a terminal, else plain lines.

    Use as the core's `emit` inside a `with` block.
    """

    console: Console = err
    _status: Status | None = None
    _title: str = ""

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self._title = event.title
            if self.console.is_terminal:
                self._status = self.console.status(event.title)
                self._status.start()
            else:
                self.console.print(f"… {event.title}", soft_wrap=True)
        elif isinstance(event, StepOutput):
            if self._status:
                line = Text(event.line.strip()[:100], style="dim")
                self._status.update(Text.assemble(self._title, "\n  ", line))
        elif isinstance(event, StepFinished):
            self._stop()
            took = f" [dim]({event.seconds:.1f} s)[/]" if event.seconds >= 1 else ""
            detail = f": {event.detail}" if event.detail else ""
            word = "" if event.outcome is Outcome.DONE else f" [dim]{event.outcome.value}[/]"
            self.console.print(
                f"{MARKS[event.outcome]} {self._title}{word}{detail}{took}", soft_wrap=True
            )

    def _stop(self) -> None:
        if self._status:
            self._status.stop()
            self._status = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    grid = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*row)
    out.print(grid)


def as_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def ok_mark(ok: bool) -> str:
    return "[green]ok[/]" if ok else "[red]missing[/]"


def error(message: str, hint: str | None = None) -> None:
    err.print(f"[red]error:[/] {message}", soft_wrap=True)
    if hint:
        err.print(f"[dim]hint:[/] {hint}", soft_wrap=True)


def line(text: str) -> None:
    out.print(text, soft_wrap=True)


def image_table(views: Sequence[ImageView]) -> None:
    rows = [
        (
            v.record.tag,
            STATUS_STYLE.get(v.record.status.value, "{}").format(v.record.status.value),
            ages.ago(v.record.built_at),
            str(v.in_use),
            (v.record.provider_id or "-")[:12],
            v.record.parent or v.ancestry[-1],
        )
        for v in views
    ]
    table("images", ["image", "status", "built", "in use", "id", "parent"], rows)


STATUS_STYLE = {
    "ready": "[green]{}[/]",
    "failed": "[red]{}[/]",
    "revoked": "[yellow]{}[/]",
    "building": "[cyan]{}[/]",
}


def mapping(title: str, data: dict[str, Any]) -> None:
    grid = Table(title=title, title_justify="left", show_header=False, show_edge=False)
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in data.items():
        shown = json.dumps(value, indent=1) if isinstance(value, dict | list) else str(value)
        grid.add_row(key, shown)
    out.print(grid)


def plan(p: Plan, console: Console = out) -> None:
    if p.empty:
        console.print(f"{p.fleet}: nothing to do{': ' + p.note if p.note else ''}", soft_wrap=True)
        return
    head = f"{p.kind} {p.fleet} with {p.image} ({p.strategy})"
    console.print(head + (f" — {p.note}" if p.note else ""), soft_wrap=True)
    for number, batch in enumerate(p.batches, 1):
        going = ", ".join(batch.remove) or "none"
        console.print(
            f"  batch {number}: {batch.add} new server(s) in; out: {going}", soft_wrap=True
        )


def result(r: Result) -> None:
    if r.status is RolloutStatus.NOTHING:
        line(f"{r.plan.fleet}: nothing to do{': ' + r.reason if r.reason else ''}")
    elif r.status is RolloutStatus.ROLLED_BACK:
        error(
            f"{r.plan.kind} of {r.plan.fleet} rolled back: {r.reason}",
            "the servers that were serving before still serve; see: phoenix history "
            + r.plan.fleet,
        )
    else:
        line(
            f"{r.plan.kind} of {r.plan.fleet} done (run #{r.run_id}): "
            f"{len(r.added)} server(s) in, {len(r.removed)} out"
        )
    for warning in r.warnings:
        err.print(f"[yellow]warning:[/] {warning}")


def fleet_status(s: FleetStatus) -> None:
    rows = [
        (v.name, v.address or "-", v.image, str(v.generation), ages.ago(v.created_at),
         "[green]yes[/]" if v.healthy else "[red]no[/]", v.status)
        for v in s.servers
    ]  # fmt: skip
    table(f"{s.fleet} on {s.endpoint}", ["server", "address", "image", "gen", "age", "healthy",
                                         "state"], rows)  # fmt: skip
    for run in s.interrupted:
        error(
            f"run #{run.id} ({run.kind}, started {run.started_at}) was interrupted",
            f"run: phoenix rebuild {s.fleet}  (it settles and finishes the run)",
        )


RUN_MARKS = {RunStatus.SUCCEEDED: "[green]✓[/]", RunStatus.ROLLED_BACK: "[red]↶[/]"}


def history(runs: Sequence[RunHistory]) -> None:
    for h in runs:
        r = h.run
        mark = RUN_MARKS.get(r.status, "[yellow]![/]")
        out.print(
            f"{mark} #{r.id} {r.kind} {r.fleet or ''} {r.status} — started {r.started_at}",
            soft_wrap=True,
        )
        for event in h.events:
            out.print(
                f"    {event['at'][11:19]} {event['step']}: {event['detail']}", soft_wrap=True
            )


SEVERITY_STYLE = {
    Severity.HIGH: "[red]high[/]",
    Severity.MEDIUM: "[yellow]medium[/]",
    Severity.LOW: "[dim]low[/]",
}
SCAN_STYLE = {ScanStatus.CLEAN: "green", ScanStatus.DRIFTED: "yellow"}  # the rest: red


def drift(report: ScanReport) -> None:
    for s in report.servers:
        style = SCAN_STYLE.get(s.status, "red")
        head = f"[{style}]{s.status}[/] {s.name} ({s.address}, {s.image})"
        out.print(head + (f": {s.error}" if s.error else ""), soft_wrap=True)
        rows = [
            (SEVERITY_STYLE[f.severity], f.kind, f.subject, f.before or "", f.after or "",
             evidence_label(f.evidence))
            for f in s.findings
        ]  # fmt: skip
        if rows:
            table("", ["severity", "kind", "subject", "before", "after", "evidence"], rows)
        if any(is_archived(f.evidence) for f in s.findings):
            line(f"  the changed files are kept: phoenix drift evidence {s.name}")
    for problem in report.problems:
        error(problem)
    counts = {st: sum(1 for s in report.servers if s.status is st) for st in ScanStatus}
    line(", ".join(f"{n} {st}" for st, n in counts.items() if n) or "no servers to scan")


def drift_changes(changes: Sequence[Change]) -> None:
    rows = [
        (
            c.at[:19].replace("T", " "),
            c.change,
            c.server,
            SEVERITY_STYLE[c.severity],
            c.kind,
            c.subject,
        )
        for c in changes
    ]
    table("drift between scans", ["scan", "change", "server", "severity", "kind", "subject"], rows)
    if not rows:
        line("no change between the scans in that window")


def raw(text: str) -> None:
    """Text exactly as it is: no markup, no wrapping (a file's content)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def evidence(server: str, kept: Sequence[Archived]) -> None:
    rows = [(a.path, str(len(a.content)), a.sha256[:16], ages.ago(a.archived_at)) for a in kept]
    table(f"archived hand changes of {server}", ["path", "bytes", "sha256", "found"], rows)
    line(f"see one: phoenix drift evidence {server} PATH")


def promotion(p: Promotion) -> None:
    rows = [(path, "install") for path in p.written] + [(path, "remove") for path in p.removed]
    rows += [(s.path, f"[yellow]skipped[/]: {s.reason}") for s in p.skipped]
    if rows:
        title = f"promoted from {p.server} ({p.image_tag}) into {p.directory}"
        table(title, ["path", "what"], rows)
    if not p.written and not p.removed:
        line(f"nothing promoted: no drifted file of {p.server} to carry into the image")
        return
    edited = "now runs" if p.template_changed else "already ran"
    line(f"{p.template} {edited} promoted/apply.sh")
    line(f"the next `phoenix image bake {p.image}` carries the change; review and commit it first")

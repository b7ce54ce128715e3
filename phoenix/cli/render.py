"""All terminal output: progress of long steps, tables, JSON, errors. The only module using rich."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleDimensions
from rich.table import Table
from rich.text import Text

from phoenix import ages
from phoenix.events import Event, ItemFinished, Outcome, StepFinished, StepOutput, StepStarted
from phoenix.state import RunStatus
from phoenix.text import printable

# What is rendered is imported for its types only, and the few values needed where they are used:
# every command imports this module, and importing the core (pydantic models, the drift and fleet
# machinery) would be most of its start-up. Styles are keyed by an enum's value for the same reason.
if TYPE_CHECKING:
    from rich.status import Status

    from phoenix.config import Severity
    from phoenix.drift.evidence import Archived
    from phoenix.drift.promote.promote import Promotion
    from phoenix.drift.scan import Change, ScanReport
    from phoenix.fleet.plan import FleetStatus, Plan, Result
    from phoenix.image.registry import ImageView
    from phoenix.ops import RunHistory
    from phoenix.report import Report, ServerRow
    from phoenix.schedule.history import LastRun
    from phoenix.schedule.install import ApplyReport
    from phoenix.schedule.listing import ScheduleView

UNCUT = 1_000_000  # the width without a terminal: a pipe or a file gets every line whole


class _Console(Console):
    """A rich console that never reads markup or emoji codes in a string, and that without a
    terminal (a pipe, cron, CI) neither colours nor wraps nor cuts: long names stay whole."""

    def __init__(self, stderr: bool = False) -> None:
        super().__init__(stderr=stderr, highlight=False, markup=False, emoji=False)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(UNCUT, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


out: Console = _Console()
err: Console = _Console(stderr=True)

Cell = str | Text  # a str is shown as it is (escaped); a Text carries its own style


def plain(text: str, style: str = "") -> Text:
    """`text` (a server's, say) shown as it is: never markup, every control character escaped."""
    return Text(printable(text), style=style)


def cell(value: Cell) -> Text:
    return value if isinstance(value, Text) else plain(value)


def styled(word: str, style: str) -> Text:
    return Text(word, style=style)


MARKS = {
    Outcome.DONE: ("✓", "green"),
    Outcome.UNCHANGED: ("·", "dim"),
    Outcome.FAILED: ("✗", "red"),
    Outcome.SKIPPED: ("-", "dim"),
}


@dataclass
class Progress:
    """Renders core events: a spinner and the latest output line on a terminal, else plain lines.

    Use as the core's `emit` inside a `with` block; the core may call it from several threads
    (each server of a drift scan says when it is done: ItemFinished, one line each).
    """

    console: Console = err
    _status: Status | None = None
    _title: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._show(event)

    def _show(self, event: Event) -> None:
        if isinstance(event, ItemFinished):
            mark, colour = MARKS[event.outcome]
            self.console.print(
                Text.assemble(
                    (mark, colour),
                    f" {printable(event.item)}",
                    f": {printable(event.detail)}" if event.detail else "",
                    (f" ({event.seconds:.1f} s)" if event.seconds >= 1 else "", "dim"),
                ),
                soft_wrap=True,
            )
        elif isinstance(event, StepStarted):
            self._title = printable(event.title)
            if self.console.is_terminal:
                self._status = self.console.status(Text(self._title))
                self._status.start()
            else:
                self.console.print(Text(f"… {self._title}"), soft_wrap=True)
        elif isinstance(event, StepOutput):
            if self._status:
                line = plain(event.line.strip()[:100], style="dim")
                self._status.update(Text.assemble(self._title, "\n  ", line))
        elif isinstance(event, StepFinished):
            self._stop()
            mark, colour = MARKS[event.outcome]
            self.console.print(
                Text.assemble(
                    (mark, colour),
                    f" {self._title}",
                    ("" if event.outcome is Outcome.DONE else f" {event.outcome.value}", "dim"),
                    f": {printable(event.detail)}" if event.detail else "",
                    (f" ({event.seconds:.1f} s)" if event.seconds >= 1 else "", "dim"),
                ),
                soft_wrap=True,
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


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Cell]]) -> None:
    """A table; each str cell is shown as it is (escaped), never as markup, never cut."""
    grid = Table(title=plain(title), title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(cell(value) for value in row))
    out.print(grid)


def as_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def ok_mark(ok: bool) -> Text:
    return styled("ok", "green") if ok else styled("missing", "red")


def error(message: str, hint: str | None = None) -> None:
    err.print(Text.assemble(("error:", "red"), " ", plain(message)), soft_wrap=True)
    if hint:
        err.print(Text.assemble(("hint:", "dim"), " ", plain(hint)), soft_wrap=True)


def warning(message: str) -> None:
    err.print(Text.assemble(("warning:", "yellow"), " ", plain(message)), soft_wrap=True)


def line(text: Cell) -> None:
    """One line of output: a str is shown as it is (escaped), never as markup."""
    out.print(cell(text), soft_wrap=True)


def image_table(views: Sequence[ImageView]) -> None:
    rows = [
        (
            v.record.tag,
            styled(v.record.status.value, STATUS_STYLE.get(v.record.status.value, "")),
            ages.ago(v.record.built_at),
            str(v.in_use),
            (v.record.provider_id or "-")[:12],
            v.record.parent or v.ancestry[-1],
        )
        for v in views
    ]
    table("images", ["image", "status", "built", "in use", "id", "parent"], rows)


STATUS_STYLE = {"ready": "green", "failed": "red", "revoked": "yellow", "building": "cyan"}


def mapping(title: str, data: dict[str, Any]) -> None:
    grid = Table(title=plain(title), title_justify="left", show_header=False, show_edge=False)
    grid.add_column(style="bold", overflow="fold")
    grid.add_column(overflow="fold")
    for key, value in data.items():
        if isinstance(value, dict | list):  # JSON escapes every control character itself
            shown = Text(json.dumps(value, indent=1, default=str))
        else:
            shown = plain(str(value))
        grid.add_row(plain(key), shown)
    out.print(grid)


def plan(p: Plan, console: Console = out) -> None:
    if p.empty:
        shown = f"{p.fleet}: nothing to do{': ' + p.note if p.note else ''}"
        console.print(plain(shown), soft_wrap=True)
        return
    head = f"{p.kind} {p.fleet} with {p.image} ({p.strategy})"
    console.print(plain(head + (f" — {p.note}" if p.note else "")), soft_wrap=True)
    for number, batch in enumerate(p.batches, 1):
        going = ", ".join(batch.remove) or "none"
        console.print(
            plain(f"  batch {number}: {batch.add} new server(s) in; out: {going}"), soft_wrap=True
        )
        for name in batch.remove:
            for reason in p.reasons.get(name, []):
                console.print(plain(f"    {name}: {reason}"), soft_wrap=True)


def result(r: Result) -> None:
    from phoenix.fleet.plan import RolloutStatus

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
    for shown in r.warnings:
        warning(shown)


def fleet_status(s: FleetStatus) -> None:
    rows = [
        (v.name, v.address or "-", v.image, str(v.generation), ages.ago(v.created_at),
         styled("yes", "green") if v.healthy else styled("no", "red"), v.status)
        for v in s.servers
    ]  # fmt: skip
    table(f"{s.fleet} on {s.endpoint}", ["server", "address", "image", "gen", "age", "healthy",
                                         "state"], rows)  # fmt: skip
    if not s.at_size:
        shown = (
            f"{s.serving} of size {s.size} serving"
            if s.serving < s.size
            else f"{s.serving} serving, size {s.size}"
        )
        line(plain(f"{s.fleet}: {shown}: run phoenix deploy {s.fleet} to converge", "yellow"))
    for run in s.interrupted:
        error(
            f"run #{run.id} ({run.kind}, started {run.started_at}) was interrupted",
            f"run: phoenix rebuild {s.fleet}  (it settles and finishes the run)",
        )


RUN_MARKS = {RunStatus.SUCCEEDED: ("✓", "green"), RunStatus.ROLLED_BACK: ("↶", "red")}


def history(runs: Sequence[RunHistory]) -> None:
    for h in runs:
        r = h.run
        mark = RUN_MARKS.get(r.status, ("!", "yellow"))
        head = f" #{r.id} {r.kind} {r.fleet or ''} {r.status} — started {r.started_at}"
        out.print(Text.assemble(mark, plain(head)), soft_wrap=True)
        for event in h.events:
            line(f"    {event['at'][11:19]} {event['step']}: {event['detail']}")


SEVERITY_STYLE = {"high": "red", "medium": "yellow", "low": "dim"}  # by Severity's value
SCAN_STYLE = {"clean": "green", "drifted": "yellow"}  # by ScanStatus's value; the rest: red


def severity(level: Severity) -> Text:
    return styled(level.value, SEVERITY_STYLE[level.value])


def drift(report: ScanReport) -> None:
    from phoenix.drift.evidence import is_archived
    from phoenix.drift.evidence import label as evidence_label
    from phoenix.drift.scan import ScanStatus

    for s in report.servers:
        seen = ", disk cross-checked" if s.witnessed else ""
        head = f" {s.name} ({s.address}, {s.image}{seen})" + (f": {s.error}" if s.error else "")
        status = (s.status.value, SCAN_STYLE.get(s.status.value, "red"))
        out.print(Text.assemble(status, plain(head)), soft_wrap=True)
        rows = [
            (severity(f.severity), f.kind, f.subject, f.before or "", f.after or "",
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
        (c.at[:19].replace("T", " "), c.change, c.server, severity(c.severity), c.kind, c.subject)
        for c in changes
    ]
    table("drift between scans", ["scan", "change", "server", "severity", "kind", "subject"], rows)
    if not rows:
        line("no change between the scans in that window")


def raw(text: str) -> None:
    """A file's content (a server's): line by line, no markup, no wrapping, and every control
    character but the newline and the tab escaped (a backslash shows as two)."""
    sys.stdout.write(printable(text, keep="\n\t"))
    sys.stdout.flush()


def evidence(server: str, kept: Sequence[Archived]) -> None:
    rows = [(a.path, str(len(a.content)), a.sha256[:16], ages.ago(a.archived_at)) for a in kept]
    table(f"archived hand changes of {server}", ["path", "bytes", "sha256", "found"], rows)
    line(f"see one: phoenix drift evidence {server} PATH")


def promotion(p: Promotion) -> None:
    rows: list[tuple[Cell, ...]] = [(path, "install") for path in p.written]
    rows += [(path, "remove") for path in p.removed]
    rows += [
        (s.path, Text.assemble(("skipped", "yellow"), plain(f": {s.reason}"))) for s in p.skipped
    ]
    if rows:
        title = f"promoted from {p.server} ({p.image_tag}) into {p.directory}"
        table(title, ["path", "what"], rows)
    if not p.written and not p.removed:
        line(f"nothing promoted: no drifted file of {p.server} to carry into the image")
        return
    for f in p.files:
        raw(
            f"wrote promoted/files{f.path}: mode {f.mode}, {f.size} bytes, sha256 {f.sha256[:16]}\n"
        )
    raw(p.diff)
    edited = "now runs" if p.template_changed else "already ran"
    line(f"{p.template} {edited} promoted/apply.sh")
    line(f"the next `phoenix image bake {p.image}` carries the change; review and commit it first")


APPLIED_STYLE = {"added": "green", "changed": "yellow", "removed": "red", "unchanged": "dim"}


def schedules_applied(report: ApplyReport) -> None:
    rows = [
        (a.name, styled(a.action.value, APPLIED_STYLE[a.action.value]), a.cron, a.command)
        for a in report.schedules
    ]
    table(f"schedules in {report.target}", ["schedule", "cron entry", "when", "command"], rows)
    line(f"{report.target}: " + ("updated" if report.changed else "nothing to change"))


CRON_STYLE = {"installed": "green", "missing": "red", "different": "yellow"}  # by CronState's value


def schedules(views: Sequence[ScheduleView]) -> None:
    from phoenix.schedule.listing import CronState

    rows = [
        (v.name, f"{v.action} {v.fleet}", v.cron, styled(v.state.value, CRON_STYLE[v.state.value]),
         ", ".join(t[:16].replace("T", " ") for t in v.next_runs), _last_run(v.last))
        for v in views
    ]  # fmt: skip
    table("schedules", ["schedule", "action", "when", "cron", "next runs", "last run"], rows)
    if any(v.state is not CronState.INSTALLED for v in views):
        line("cron does not hold every schedule as declared: run phoenix schedule apply")


def _last_run(last: LastRun | None) -> Cell:
    if last is None:
        return styled("never", "dim")
    took = f" in {last.seconds:.0f} s" if last.seconds is not None else ""
    mark, colour = RUN_MARKS.get(RunStatus(last.status), ("!", "yellow"))
    shown = f" #{last.id} {last.status}{took}, {ages.ago(last.started_at)}"
    return Text.assemble((mark, colour), plain(shown))


def note(text: str) -> None:
    """A line about what was done, on stderr: stdout stays the report (or its JSON)."""
    err.print(plain(text), soft_wrap=True)


def report(r: Report) -> None:
    """Each fleet: its servers, its next scheduled runs, its last runs; nothing cut."""
    from phoenix.report import span

    for f in r.fleets:
        due = "unknown" if f.due is None else str(f.due)
        head = (
            f"{f.name} ({f.image}): {f.serving} serving of {f.size}, {len(f.servers)} live,"
            f" max_age {f.max_age or 'none'}, due {due}"
        )
        rows = [
            (s.name, s.address or "-", s.status, span(s.age_seconds), s.image,
             span(s.image_age_seconds), _scan(s), _due(s))
            for s in f.servers
        ]  # fmt: skip
        columns = ["server", "address", "state", "age", "image", "image age", "last scan", "due"]
        table(head, columns, rows)
        for s in f.schedules:
            shown = f"error: {s.error}" if s.error else ", ".join(s.next_runs)
            line(f"  {s.name} ({s.action}, {s.cron}) next: {shown}")
        runs = [
            (f"#{x.id}", x.action, styled(x.outcome, OUTCOME_STYLE.get(x.outcome, "")),
             x.started_at, span(x.duration_seconds))
            for x in f.runs
        ]  # fmt: skip
        if runs:
            table(f"last runs of {f.name}", ["run", "action", "outcome", "started", "took"], runs)
        else:
            line(f"  no run of {f.name} yet")
    if not r.fleets:
        line("no fleet defined")


OUTCOME_STYLE = {"succeeded": "green", "rolled_back": "red", "interrupted": "red"}


def _scan(s: ServerRow) -> Cell:
    if s.last_scan is None:
        return styled("never", "dim")
    found = ", ".join(f"{n} {sev}" for sev, n in s.findings.items() if n) or "clean"
    return plain(f"{ages.ago(s.last_scan)}: {found}")


def _due(s: ServerRow) -> Cell:
    if s.due is None:
        return styled("unknown", "dim")
    return styled(s.due_text, "yellow") if s.due else "no"

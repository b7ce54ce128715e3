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
from phoenix.events import Event, Outcome, StepFinished, StepOutput, StepStarted
from phoenix.images import ImageView

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

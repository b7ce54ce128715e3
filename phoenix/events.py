"""Progress events: the core emits them, the CLI renders them (and later the history records them).

The core never prints. A long operation takes an `emit` callable and calls it with these records;
`discard` is the listener for callers that do not care.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    DONE = "done"  # the step changed something
    UNCHANGED = "unchanged"  # already as wanted
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class StepStarted:
    step: str
    title: str


@dataclass(frozen=True)
class StepOutput:
    """One line of live output of a long step (a build log, a command's output)."""

    step: str
    line: str


@dataclass(frozen=True)
class StepFinished:
    step: str
    outcome: Outcome
    detail: str = ""
    seconds: float = 0.0


Event = StepStarted | StepOutput | StepFinished
Emit = Callable[[Event], None]


def discard(event: Event) -> None:
    """A listener that ignores every event."""

"""Progress events: the core emits them, the CLI renders them (and later the history records them).

The core never prints. A long operation takes an `emit` callable and calls it with these records;
`discard` is the listener for callers that do not care.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@dataclass(frozen=True)
class ItemFinished:
    """One item of a step that works on many at once (a server of a drift scan) is done: said as
    soon as it is, in whatever order the items finish, while the others go on."""

    step: str
    item: str
    outcome: Outcome
    detail: str = ""
    seconds: float = 0.0


Event = StepStarted | StepOutput | StepFinished | ItemFinished
Emit = Callable[[Event], None]


def discard(event: Event) -> None:
    """A listener that ignores every event."""


@contextmanager
def step(
    emit: Emit, key: str, title: str, seconds: dict[str, float] | None = None
) -> Iterator[None]:
    """Emit StepStarted and StepFinished around a block; note its duration in `seconds`."""
    started = time.monotonic()
    emit(StepStarted(key, title))
    try:
        yield
    except BaseException as exc:
        took = time.monotonic() - started
        if seconds is not None:
            seconds[key] = took
        emit(StepFinished(key, Outcome.FAILED, _first_line(exc), took))
        raise
    took = time.monotonic() - started
    if seconds is not None:
        seconds[key] = took
    emit(StepFinished(key, Outcome.DONE, "", took))


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(getattr(exc, "message", "") or exc or type(exc).__name__)
    return text.splitlines()[0] if text else ""

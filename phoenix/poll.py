"""Waiting with a deadline: the one loop behind every wait in phoenix.

`poll` is for a probe that answers "not yet" with a false value. `ticks` is the loop itself, for a
wait that needs more than that (what it last saw, for its error message, or an early failure).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def ticks(timeout: float, interval: float) -> Iterator[float]:
    """Yield the seconds left: at once, then every `interval` seconds, the last time at the
    deadline. Stop the loop (break, return or raise) once what you wait for has happened; the
    loop running out means `timeout` seconds passed without it."""
    deadline = time.monotonic() + timeout
    while True:
        yield max(deadline - time.monotonic(), 0.0)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(interval, left))


def poll(probe: Callable[[], T | None], timeout: float, interval: float) -> T | None:
    """Call `probe` every `interval` seconds until it returns a true value, and return that value;
    None when `timeout` seconds passed first. The probe is called at least once."""
    for _ in ticks(timeout, interval):
        found = probe()
        if found:
            return found
    return None

"""poll and ticks on a fake clock: every probe counted, no real sleep."""

from __future__ import annotations

import pytest

from phoenix import poll as poll_module
from phoenix.poll import poll, ticks


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(poll_module.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(poll_module.time, "sleep", fake.sleep)
    return fake


def test_returns_the_first_true_value_without_sleeping_when_it_is_there(clock: Clock) -> None:
    assert poll(lambda: "ready", timeout=5, interval=1) == "ready"
    assert clock.slept == []


def test_probes_every_interval_until_a_true_value(clock: Clock) -> None:
    answers = iter([None, "", 0, "up"])
    assert poll(lambda: next(answers), timeout=10, interval=2) == "up"
    assert clock.slept == [2, 2, 2]


def test_none_at_the_deadline_after_a_last_probe_there(clock: Clock) -> None:
    probed: list[float] = []

    def never() -> bool:
        probed.append(clock.now)
        return False

    assert poll(never, timeout=5, interval=2) is None
    assert probed == [100, 102, 104, 105]  # the last sleep is cut to the deadline
    assert clock.now == 105


def test_a_zero_timeout_still_probes_once(clock: Clock) -> None:
    calls: list[int] = []
    assert poll(lambda: calls.append(1), timeout=0, interval=1) is None
    assert calls == [1] and clock.slept == []


def test_ticks_yield_the_seconds_left_and_end_at_the_deadline(clock: Clock) -> None:
    assert list(ticks(3, 1)) == [3, 2, 1, 0]


def test_ticks_stop_when_the_caller_breaks(clock: Clock) -> None:
    for left in ticks(60, 5):
        if left < 50:
            break
    assert clock.now == 115

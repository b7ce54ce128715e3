"""Drift at scale: the fan-out is bounded by [drift] parallel, each server has one connection and
one wall deadline for its whole scan, and each server's result is said as soon as it is done."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from phoenix.cli import render
from phoenix.drift import evidence
from phoenix.drift import scan as scan_mod
from phoenix.drift.diff import Rules
from phoenix.drift.scan import ScanStatus, ServerScan
from phoenix.errors import CommandTimeout
from phoenix.events import Event, ItemFinished, Outcome
from phoenix.host import keys, ssh
from phoenix.host.process import CommandResult
from phoenix.workspace import Workspace
from tests.unit.facts.fakes import script_output
from tests.unit.stores import serving_fleet
from tests.unit.test_hostile_scan import FILES, GOOD, baseline

WAIT = 10.0  # seconds any wait of these tests may last before it fails the test

CHANGED = script_output(
    files=(0, FILES.replace("#sha256", "f 644 0 0 3 1.0 2.0 8\0root\0root\0/etc/b\0\0#sha256")),
    packages=(0, "bash\t5.2\tamd64\tii \n"),
)


class Fake:
    """What ssh.connect gives, for every server: `on_run(server)` runs beside each command."""

    def __init__(self, on_run: Callable[[str], None] = lambda name: None) -> None:
        self.on_run = on_run
        self.connects: Counter[str] = Counter()
        self.lock = threading.Lock()

    def connect(
        self, target: ssh.Target, key: Path, timeout: float, max_output: int, deadline: float
    ) -> Fake.Session:
        with self.lock:
            self.connects[target.name] += 1
        return Fake.Session(self, target)

    class Session:
        def __init__(self, fake: Fake, target: ssh.Target) -> None:
            self.fake, self.target = fake, target

        def run(self, command: str, *args: str, timeout: float = 60, stdin: bytes = b"") -> Any:
            self.fake.on_run(self.target.name)
            return CommandResult(0, GOOD, "")

        def __enter__(self) -> Fake.Session:
            return self

        def __exit__(self, *exc: object) -> None:
            pass


def workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, servers: int, parallel: int
) -> Workspace:
    monkeypatch.delenv("PHOENIX_HOME", raising=False)
    (tmp_path / "phoenix.toml").write_text(
        f'[images.web]\n[fleets.web]\nimage = "web"\nsize = {servers}\n'
        f"[drift]\nparallel = {parallel}\n"
    )
    ws = Workspace.open(tmp_path / "phoenix.toml")
    serving_fleet(ws, [f"web-g1-{n}" for n in range(1, servers + 1)])
    monkeypatch.setattr(scan_mod, "_baseline", lambda registry, tag: baseline())
    return ws


# -- the fan-out -------------------------------------------------------------------------------


def test_parallelism_is_bounded_by_the_setting_and_each_server_has_one_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch, servers=7, parallel=3)
    busy = threading.Condition()
    active, most, started = 0, 0, 0

    def on_run(name: str) -> None:  # each command holds its worker until 3 run, or all started
        nonlocal active, most, started
        with busy:
            active, started = active + 1, started + 1
            most = max(most, active)
            busy.notify_all()
            assert busy.wait_for(lambda: active >= 3 or started == 7, timeout=WAIT)
            active -= 1
            busy.notify_all()

    fake = Fake(on_run)
    monkeypatch.setattr(scan_mod.ssh, "connect", fake.connect)
    report = scan_mod.scan(ws, ["web"])
    assert most == 3  # never more than [drift] parallel, and that many used
    assert fake.connects == {f"web-g1-{n}": 1 for n in range(1, 8)}
    assert [s.name for s in report.servers] == [f"web-g1-{n}" for n in range(1, 8)]
    assert all(s.status is ScanStatus.CLEAN for s in report.servers)


def test_each_result_is_emitted_as_soon_as_its_server_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch, servers=2, parallel=2)
    events: list[Event] = []
    second_done = threading.Event()

    def emit(event: Event) -> None:
        events.append(event)
        if isinstance(event, ItemFinished) and event.item == "web-g1-2":
            second_done.set()

    def on_run(name: str) -> None:  # the first server answers only once the second is reported
        if name == "web-g1-1":
            assert second_done.wait(WAIT), "web-g1-2's result was not emitted while web-g1-1 ran"

    monkeypatch.setattr(scan_mod.ssh, "connect", Fake(on_run).connect)
    report = scan_mod.scan(ws, ["web"], emit)
    done = [e for e in events if isinstance(e, ItemFinished)]
    assert [(e.step, e.item, e.outcome, e.detail) for e in done] == [
        ("drift", "web-g1-2", Outcome.DONE, "clean"),
        ("drift", "web-g1-1", Outcome.DONE, "clean"),
    ]
    assert [s.name for s in report.servers] == ["web-g1-1", "web-g1-2"]  # the report's order


def scanned(status: ScanStatus, **kw: Any) -> ServerScan:
    return ServerScan(name="web-1", address="a", image="i", fleet="web", status=status, **kw)


def test_the_finished_event_says_what_the_server_is() -> None:
    drifted = scanned(ScanStatus.DRIFTED, findings=[scan_mod.finding("file.modified", "/a")])
    said = [
        scan_mod.finished(s)
        for s in (
            scanned(ScanStatus.CLEAN, seconds=2.5),
            drifted,
            scanned(ScanStatus.UNTRUSTED, error="web-1: `sh` did not finish within 9 s"),
            scanned(ScanStatus.UNREACHABLE),
            scanned(ScanStatus.NO_BASELINE),
        )
    ]
    assert [(e.outcome, e.detail) for e in said] == [
        (Outcome.DONE, "clean"),
        (Outcome.FAILED, "drifted: 1 finding(s)"),
        (Outcome.FAILED, "untrusted: web-1: `sh` did not finish within 9 s"),
        (Outcome.FAILED, "unreachable"),
        (Outcome.SKIPPED, "no baseline"),
    ]
    assert said[0].seconds == 2.5


def test_progress_prints_each_finished_server_escaped() -> None:
    shown = StringIO()
    with render.Progress(console=Console(file=shown, width=200)) as progress:
        progress(ItemFinished("drift", "web-1\x1b[2J", Outcome.FAILED, "drifted: [b]x", 3.0))
    text = shown.getvalue()
    assert "✗ web-1\\x1b[2J: drifted: [b]x (3.0 s)" in text


# -- the wall deadline of one server's scan ------------------------------------------------------


class Clock:
    """time.monotonic for the scan, moved on by the fake server as it answers."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(scan_mod.time, "monotonic", fake)
    yield fake


class Slow:
    """A server that answers each command after `share` of the time it was given (or, with
    `late`, after that many seconds whatever it was given); changed: evidence is fetched."""

    def __init__(self, clock: Clock, share: float = 0.99, late: float | None = None) -> None:
        self.clock, self.share, self.late = clock, share, late
        self.timeouts: list[float] = []

    def connect(
        self, target: ssh.Target, key: Path, timeout: float, max_output: int, deadline: float
    ) -> Slow:
        assert deadline == self.clock.now + 10  # the whole scan's deadline goes to the session
        return self

    def run(self, command: str, *args: str, timeout: float = 60, stdin: bytes = b"") -> Any:
        self.timeouts.append(timeout)
        self.clock.now += self.late if self.late is not None else timeout * self.share
        if command.startswith("sh -c") and "phoenix-read" in command:
            return CommandResult(0, "ok eHl6Cg==\n", "")
        return CommandResult(0, CHANGED, "")

    def __enter__(self) -> Slow:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def scan_slow(monkeypatch: pytest.MonkeyPatch, slow: Slow) -> ServerScan:
    monkeypatch.setattr(scan_mod.ssh, "connect", slow.connect)
    target = ssh.Target(name="web-1", address="10.0.0.1", host_key="ssh-ed25519 AAAA")
    return scan_mod.scan_server(
        target, baseline(), Rules(), Path("k"), ["/etc"], 10, "i", "web",
        keep=evidence.Policy(limit=1024),
    )  # fmt: skip


def test_a_server_answering_just_in_time_gets_only_what_is_left_of_its_deadline(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    slow, began = Slow(clock), clock.now
    result = scan_slow(monkeypatch, slow)
    assert len(slow.timeouts) == 2  # the facts script, then the evidence
    assert slow.timeouts[0] == 10 and slow.timeouts[1] == pytest.approx(0.1)  # what is left
    assert clock.now - began < 10  # not 2 x 10 s: one deadline for the whole scan
    assert result.status is ScanStatus.DRIFTED and result.seconds < 10
    assert [a.path for a in result.archived] == ["/etc/b"]


def test_a_server_past_its_deadline_is_untrusted_and_no_step_starts(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    slow = Slow(clock, late=10.5)  # it answered the facts script past the whole scan's deadline
    result = scan_slow(monkeypatch, slow)
    assert len(slow.timeouts) == 1  # the evidence was not even asked for
    assert result.status is ScanStatus.UNTRUSTED
    assert result.error == "web-1: its scan did not finish within 10 s"
    assert [f.kind for f in result.findings] == ["scan.untrusted"]


# -- the watchdog of a connection --------------------------------------------------------------


class Stuck:
    """A client whose channel never opens, until the client is closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def get_transport(self) -> Any:
        closed = self.closed

        class Transport:
            def is_active(self) -> bool:
                return not closed.is_set()

            def open_session(self, timeout: float) -> Any:
                assert closed.wait(WAIT), "the watchdog did not close the connection"
                raise EOFError("closed")

        return Transport()

    def close(self) -> None:
        self.closed.set()


def test_the_watchdog_cuts_a_connection_stuck_where_no_timeout_reaches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ssh, "GRACE", 0.0)
    dog = ssh.Watchdog("web-1", time.monotonic() + 0.2, 0.2)
    client = Stuck()
    session = ssh.Session(TARGET, client, watchdog=dog)  # type: ignore[arg-type]
    with pytest.raises(CommandTimeout, match=r"web-1: `sh` did not finish within 0 s, the dead"):
        session.run("sh", timeout=60)
    assert dog.fired and client.closed.is_set()
    with pytest.raises(CommandTimeout, match="the deadline of its whole scan"):
        session.run("true")  # past the deadline, no command starts
    session.close()


def test_a_watchdog_cancelled_in_time_never_fires() -> None:
    closed = threading.Event()
    dog = ssh.Watchdog("web-1", time.monotonic() + 0.05, 0.05)
    dog.guard(closed.set)
    dog.cancel()
    dog._timer.join(WAIT)
    assert not dog.fired and not closed.is_set()
    late = threading.Event()
    dog._fire()
    dog.guard(late.set)  # guarded once fired: closed at once
    assert late.is_set()


TARGET = ssh.Target(name="web-1", address="127.0.0.1", host_key="ssh-ed25519 AAAA")


def test_a_server_that_never_sends_its_banner_fails_at_the_deadline(tmp_path: Path) -> None:
    key, _ = keys.ensure(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, then says nothing
        port = server.getsockname()[1]
        target = ssh.Target(name="web-1", address="127.0.0.1", host_key=key.public_line, port=port)
        started = time.monotonic()
        with pytest.raises(CommandTimeout, match="web-1: connecting did not finish within 0 s"):
            ssh.connect(target, key.private_path, 15, deadline=started + 0.3)
        assert time.monotonic() - started < 0.3 + ssh.GRACE + 2

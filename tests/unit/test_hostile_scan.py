"""A hostile server: forged, endless or late output never stops a scan, nor its replacement."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from phoenix import ops
from phoenix.config import Severity
from phoenix.config.models import DriftConfig
from phoenix.drift import scan as scan_mod
from phoenix.drift.diff import Rules, diff
from phoenix.drift.scan import ScanReport, ScanStatus, ServerScan
from phoenix.errors import CommandTimeout, ConnectError, OutputTooLarge, UntrustedOutput
from phoenix.facts import Facts, gather
from phoenix.host import ssh
from phoenix.host.process import CommandResult
from phoenix.state import Store
from phoenix.workspace import Workspace
from tests.unit.facts.fakes import script_output
from tests.unit.stores import serving_fleet

FILES = "f 644 0 0 3 1.0 2.0 7\0root\0root\0/etc/a\0\0#sha256\0#end 0 0\0"
GOOD = script_output(files=(0, FILES), packages=(0, "bash\t5.2\tamd64\tii \n"))
FORGED = script_output(
    files=(0, FILES.replace("644", "9z9")), packages=(0, "bash\t5.2\tamd64\tii \n")
)


class FakeSession:
    """What ssh.connect gives: `run` answers the facts script, or raises."""

    def __init__(self, target: ssh.Target, answer: str | BaseException) -> None:
        self.target = target
        self.answer = answer

    def run(self, command: str, *args: str, timeout: float = 60, stdin: bytes = b"") -> Any:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return CommandResult(0, self.answer, "")

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def baseline() -> Facts:
    return gather(FakeSession(TARGET, GOOD), ["/etc"])


TARGET = ssh.Target(name="web-1", address="10.0.0.1", host_key="ssh-ed25519 AAAA")


def connecting(monkeypatch: pytest.MonkeyPatch, answers: dict[str, str | BaseException]) -> None:
    def connect(
        target: ssh.Target, key: Path, timeout: float, max_output: int, deadline: float
    ) -> FakeSession:
        return FakeSession(target, answers[target.name])

    monkeypatch.setattr(scan_mod.ssh, "connect", connect)


def scan_one(monkeypatch: pytest.MonkeyPatch, answer: str | BaseException) -> ServerScan:
    connecting(monkeypatch, {"web-1": answer})
    return scan_mod.scan_server(TARGET, baseline(), Rules(), Path("k"), ["/etc"], 10, "i", "web")


# -- diff ------------------------------------------------------------------------------------


def test_an_area_invalid_on_the_live_server_is_one_finding_not_a_flood() -> None:
    live = gather(FakeSession(TARGET, FORGED), ["/etc"])
    assert live.invalid.keys() == {"files"} and live.packages == baseline().packages
    [found] = diff(baseline(), live)
    assert (found.kind, found.subject, found.severity) == ("facts.invalid", "files", Severity.HIGH)
    assert found.after is not None and "'9z9' is not octal" in found.after


def test_an_area_unread_on_the_live_server_is_one_facts_unread_finding() -> None:
    live = dataclasses.replace(
        baseline(), packages={}, unread={"packages": "packages failed (exit 2)"}
    )
    assert [(f.kind, f.subject, f.after) for f in diff(baseline(), live)] == [
        ("facts.unread", "packages", "packages failed (exit 2)")
    ]


def test_an_area_unreadable_on_the_baseline_is_not_compared_nor_reported() -> None:
    base = dataclasses.replace(
        baseline(), files={}, invalid={"files": "x"}, ports={}, unread={"ports": "y"}
    )
    live = dataclasses.replace(baseline(), files={}, unread={"files": "z"})
    assert diff(base, baseline()) == [] and diff(base, live) == []


# -- scan_server -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (FORGED, "output phoenix's commands never write, in files ("),
        ("no framing at all\n", "web-1: the output of `phoenix-facts"),
        (OutputTooLarge("web-1: `sh` wrote more than 10 bytes"), "wrote more than 10 bytes"),
        (CommandTimeout("web-1: `sh` did not finish within 10 s"), "did not finish"),
        (UntrustedOutput("web-1: garbled"), "garbled"),
        (RuntimeError("boom\x1b[2J"), "scanning it failed: RuntimeError: boom\\x1b[2J"),
        (KeyError("files"), "scanning it failed: KeyError"),
    ],
)
def test_a_hostile_server_is_untrusted_and_the_scan_never_raises(
    monkeypatch: pytest.MonkeyPatch, answer: str | BaseException, why: str
) -> None:
    scanned = scan_one(monkeypatch, answer)
    assert scanned.status is ScanStatus.UNTRUSTED and not scanned.status.scanned
    flagged = scanned.findings[0]
    assert (flagged.kind, flagged.subject, flagged.severity) == ("scan.untrusted", "web-1", "high")
    assert flagged.after is not None and why in flagged.after and "\x1b" not in flagged.after
    assert scanned.error == flagged.after


def test_a_reason_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    scanned = scan_one(monkeypatch, ValueError("x" * 10_000))
    assert scanned.error is not None and len(scanned.error) <= scan_mod.MAX_REASON


def test_a_connection_failure_is_unreachable_with_no_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scanned = scan_one(monkeypatch, ConnectError("web-1: connection lost"))
    assert (scanned.status, scanned.findings, scanned.error) == (
        ScanStatus.UNREACHABLE,
        [],
        "web-1: connection lost",
    )


def test_a_good_server_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    assert scan_one(monkeypatch, GOOD).status is ScanStatus.CLEAN


# -- scan of a fleet: one forged server, the other scanned and both recorded -------------------


def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("PHOENIX_HOME", raising=False)
    (tmp_path / "phoenix.toml").write_text(
        '[images.web]\n[fleets.web]\nimage = "web"\nsize = 2\n[drift]\nmax_output = 2097152\n'
    )
    ws = Workspace.open(tmp_path / "phoenix.toml")
    serving_fleet(ws, ["web-g1-1", "web-g1-2"])
    monkeypatch.setattr(scan_mod, "_baseline", lambda registry, tag: baseline())
    return ws


def test_one_forged_server_does_not_stop_the_scan_of_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch)
    seen: list[int] = []

    def connect(
        target: ssh.Target, key: Path, timeout: float, max_output: int, deadline: float
    ) -> FakeSession:
        seen.append(max_output)
        return FakeSession(target, FORGED if target.name == "web-g1-1" else GOOD)

    monkeypatch.setattr(scan_mod.ssh, "connect", connect)
    report = scan_mod.scan(ws, ["web"])
    assert {s.name: s.status for s in report.servers} == {
        "web-g1-1": ScanStatus.UNTRUSTED,
        "web-g1-2": ScanStatus.CLEAN,
    }
    assert seen == [2097152, 2097152]  # [drift] max_output, passed down
    with Store.open(ws.home) as store:
        rows = store.rows("SELECT server, kind, subject, severity FROM findings ORDER BY kind")
    assert [(r["server"], r["kind"], r["subject"], r["severity"]) for r in rows] == [
        ("web-g1-1", "facts.invalid", "files", "high"),
        ("web-g1-1", "scan.failed", "web-g1-1", "high"),
        ("web-g1-1", "scan.untrusted", "web-g1-1", "high"),
    ]
    changes = scan_mod.changes_since(ws, "1d")
    assert changes == []  # one scan only: nothing to compare with yet
    ops_warnings = ops.archive_drift(ws, "web", ["web-g1-1"], lambda event: None)
    assert len(ops_warnings) == 1 and ops_warnings[0].startswith("web-g1-1 could not be scanned")


def test_an_unreachable_server_is_recorded_a_server_without_baseline_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch)
    connecting(monkeypatch, {"web-g1-1": ConnectError("web-g1-1: refused"), "web-g1-2": GOOD})
    scan_mod.scan(ws, ["web"])
    monkeypatch.setattr(scan_mod, "_baseline", lambda registry, tag: None)
    scan_mod.scan(ws, ["web"])
    with Store.open(ws.home) as store:
        rows = store.rows("SELECT run_id, server, kind, after FROM findings")
    assert [(r["server"], r["kind"], r["after"]) for r in rows] == [
        ("web-g1-1", "scan.failed", "web-g1-1: refused")
    ]
    [change] = scan_mod.changes_since(ws, "1d")
    assert (change.change, change.server, change.kind) == ("went away", "web-g1-1", "scan.failed")


# -- ops: the rebuild goes on ----------------------------------------------------------------


def test_archive_drift_turns_any_exception_of_the_scan_into_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kw: Any) -> ScanReport:
        raise ValueError("mode '9z9' is not octal permission bits")

    monkeypatch.setattr(scan_mod, "scan", broken)
    events: list[object] = []
    warnings = ops.archive_drift(Workspace.__new__(Workspace), "web", ["web-1"], events.append)
    assert warnings == [
        "the drift of the servers to replace could not be archived:"
        " ValueError: mode '9z9' is not octal permission bits"
    ]
    assert events  # said as it happened


def test_waiting_for_the_archive_never_raises() -> None:
    failed: Future[list[str]] = Future()
    failed.set_exception(RuntimeError("boom"))
    assert ops._wait(failed) == [
        "the drift of the servers to replace could not be archived: RuntimeError: boom"
    ]


def server(name: str, status: ScanStatus) -> ServerScan:
    return ServerScan(name=name, address="a", image="i", fleet="web", status=status)


def test_drift_replace_picks_untrusted_and_unreachable_not_no_baseline() -> None:
    servers = [
        server("web-1", ScanStatus.CLEAN),
        server("web-2", ScanStatus.UNTRUSTED),
        server("web-3", ScanStatus.UNREACHABLE),
        server("web-4", ScanStatus.NO_BASELINE),
    ]
    report = ScanReport(scanned_at="t", servers=servers)
    assert ops.to_replace(report) == {"web": ["web-2", "web-3"]}


# -- ssh: output capped ----------------------------------------------------------------------


class FakeChannel:
    """A channel whose command writes `chunks` on stdout, forever if `endless`."""

    def __init__(self, chunk: bytes, count: int) -> None:
        self.chunk, self.count = chunk, count
        self.closed = False
        self.status_event = threading.Event()
        self.status_event.set()
        self.exit_status = 0

    def __enter__(self) -> FakeChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def exec_command(self, line: str) -> None:
        pass

    def settimeout(self, seconds: float) -> None:
        pass

    def recv(self, size: int) -> bytes:
        if self.closed or self.count == 0:
            return b""
        self.count -= 1
        return self.chunk

    def recv_stderr_ready(self) -> bool:
        return False

    def sendall(self, data: bytes) -> None:
        pass

    def shutdown_write(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeClient:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel

    def get_transport(self) -> Any:
        channel = self.channel

        class Transport:
            def is_active(self) -> bool:
                return True

            def open_session(self, timeout: float) -> FakeChannel:
                return channel

        return Transport()

    def close(self) -> None:
        pass


def test_a_command_that_writes_too_much_is_cut_off() -> None:
    channel = FakeChannel(b"x" * 1000, count=10**9)
    session = ssh.Session(TARGET, FakeClient(channel), max_output=5000)  # type: ignore[arg-type]
    with pytest.raises(OutputTooLarge, match=r"web-1: `cat /dev/zero` wrote more than 5000 bytes"):
        session.run("cat /dev/zero")
    assert channel.closed and channel.count > 10**8
    assert isinstance(OutputTooLarge("x"), UntrustedOutput)


def test_a_command_within_the_cap_is_read_whole() -> None:
    session = ssh.Session(TARGET, FakeClient(FakeChannel(b"x" * 1000, 5)), max_output=5000)  # type: ignore[arg-type]
    assert session.run("true").stdout == "x" * 5000


def test_max_output_setting() -> None:
    assert DriftConfig().max_output == 64 * 1024 * 1024 == ssh.MAX_OUTPUT
    for bad in (0, 1024, 2 * 1024**3):
        with pytest.raises(ValidationError):
            DriftConfig(max_output=bad)

"""Host commands: live lines, and a failure that shows its last lines."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from phoenix.errors import CommandError
from phoenix.host import process
from tests.conftest import wait_until


def test_stream_hands_over_each_line_and_logs_it(tmp_path: Path) -> None:
    seen: list[str] = []
    log = tmp_path / "build.log"
    process.stream(["sh", "-c", "echo one; echo two >&2; echo three"], seen.append, log=log)
    assert seen == ["one", "two", "three"]
    assert log.read_text() == "one\ntwo\nthree\n"


def test_stream_failure_carries_the_tail_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    script = "for i in $(seq 1 30); do echo line$i; done; exit 3"
    with pytest.raises(CommandError) as caught:
        process.stream(["sh", "-c", script], lambda line: None, log=log, tail=5)
    message = caught.value.message
    assert "exit 3" in message and str(log) in message
    assert "line30" in message and "line25" not in message


def test_run_missing_command_is_an_operator_error() -> None:
    with pytest.raises(CommandError, match="not installed"):
        process.run(["phoenix-no-such-command"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(") ", 1)[1][0] != "Z"


def test_a_daemon_a_command_starts_outlives_it_and_other_leftovers_do_not() -> None:
    """`haproxy -D` forks its daemon in the command's process group: `daemon=True` keeps it."""
    started = "sh -c 'sleep 60 >/dev/null 2>&1 </dev/null & echo $!'"
    kept = int(process.run(["sh", "-c", started], daemon=True).stdout)
    try:
        assert _alive(kept)
    finally:
        os.kill(kept, signal.SIGKILL)
    gone = int(process.run(["sh", "-c", started]).stdout)
    wait_until("the leftover to be killed", lambda: not _alive(gone), timeout=10)

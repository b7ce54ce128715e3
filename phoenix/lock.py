"""One operation per fleet, or per image, at a time: an flock on HOME/locks/KIND/NAME.lock.

Each kind of thing has its own directory, so a fleet and an image of the same name (or a fleet
named `image-web` and the image `web`) never share a lock. The kernel drops an flock when its
holder dies, so a crashed or killed phoenix never leaves anything locked. The file's content only
tells a refused process who holds the lock; it is not the lock.
The file is never deleted: removing it would let two processes lock two different files.

When an interrupt (Ctrl-C, SIGTERM) unwinds through a lock, the hooks registered with
`before_release` run first: the host layer stops the children phoenix started, so that no
Terraform or Packer still works on a fleet or image whose lock another run could now take.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self

from phoenix.errors import LockHeld
from phoenix.state import now


@dataclass(frozen=True)
class Holder:
    """What the lock file says about the process holding it."""

    pid: int
    operation: str
    started_at: str
    host: str


# What runs before a lock is released on an interrupt (the kernel cannot import the layers that
# start processes: they register here).
_before_release: list[Callable[[], None]] = []


def before_release(hook: Callable[[], None]) -> None:
    """Run `hook` before any lock is released by an interrupt (KeyboardInterrupt, SIGTERM)."""
    if hook not in _before_release:
        _before_release.append(hook)


class Kind(StrEnum):
    """What a lock guards; also the directory of its lock files."""

    FLEET = "fleet"
    IMAGE = "image"


class Lock:
    """The lock of one fleet or image; `with lock(...)` holds it for the block."""

    def __init__(self, home: Path, kind: Kind, name: str, operation: str) -> None:
        if not name or "/" in name or "\0" in name or name.startswith("."):
            raise ValueError(f"not a {kind} name: {name!r}")  # it would leave its directory
        self.path = home / "locks" / kind / f"{name}.lock"
        self.kind = kind
        self.name = name
        self.operation = operation
        self._fd: int | None = None

    @property
    def subject(self) -> str:
        """What the lock guards, for the operator: `web` (a fleet), `image web`."""
        return self.name if self.kind is Kind.FLEET else f"{self.kind} {self.name}"

    def acquire(self) -> None:
        """Take the lock or raise LockHeld at once (never waits)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Python opens file descriptors non-inheritable: tools we run do not keep the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise _held(self.subject, holder) from None
        holder = Holder(os.getpid(), self.operation, now(), socket.gethostname())
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Clear the holder record and drop the lock; a no-op if not held."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM (errors.Terminated)
                for hook in _before_release:
                    hook()
        finally:
            self.release()


def lock(home: Path, kind: Kind, name: str, *, operation: str) -> Lock:
    """The lock of `name` of `kind`, for `with lock(home, Kind.FLEET, "web", operation=...):`."""
    return Lock(home, kind, name, operation)


def fleet_lock(home: Path, fleet: str, *, operation: str) -> Lock:
    """The lock of a fleet, for `with fleet_lock(home, fleet, operation="rebuild"):`."""
    return Lock(home, Kind.FLEET, fleet, operation)


def image_lock(home: Path, image: str, *, operation: str) -> Lock:
    """The lock of an image (its bakes and its template), for `with image_lock(...):`."""
    return Lock(home, Kind.IMAGE, image, operation)


def _read_holder(fd: int) -> Holder | None:
    """The holder record, or None if it is empty or half-written (or not ours)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        return Holder(
            pid=int(record["pid"]),
            operation=str(record["operation"]),
            started_at=str(record["started_at"]),
            host=str(record["host"]),
        )
    except (ValueError, TypeError, KeyError):
        return None


def _held(subject: str, holder: Holder | None) -> LockHeld:
    if holder is None:
        return LockHeld(
            f"another phoenix process is already working on {subject}",
            hint="wait for it to finish",
        )
    return LockHeld(
        f"{holder.operation} of {subject} already running since {_clock(holder.started_at)},"
        f" pid {holder.pid}",
        hint=f"wait for it to finish, or check `ps -p {holder.pid}`",
    )


def _clock(timestamp: str) -> str:
    """HH:MM:SS in local time, with the date if not today; the raw text if unparsable."""
    try:
        started = datetime.fromisoformat(timestamp).astimezone()
    except ValueError:
        return timestamp
    if started.date() != datetime.now().astimezone().date():
        return started.strftime("%Y-%m-%d %H:%M:%S")
    return started.strftime("%H:%M:%S")

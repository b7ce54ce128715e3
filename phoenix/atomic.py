"""Files written whole or not at all: a reader sees the old content or the new, never a part."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def temp_path(path: Path) -> Path:
    """The temp file beside `path`: hidden, named after it, the writer's process and thread, and
    ending in .tmp (never in .tf, .json or .cfg: Terraform or a glob would read it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_native_id()}.tmp")


def write_atomic(
    path: Path,
    data: bytes | str,
    mode: int | None = None,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Replace `path` with `data` (str is written as UTF-8): a temp file in the same directory is
    written, fsync'd, given `mode`, passed to `check` (which raises to refuse it), then renamed
    over `path`. On any failure the temp file is removed and `path` is left as it was.

    `mode` None gives a new file's usual permissions (0o666 less the umask).
    """
    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    tmp.unlink(missing_ok=True)  # left by a process of the same id that died mid-write
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
            if mode is not None:
                os.fchmod(out.fileno(), mode)
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

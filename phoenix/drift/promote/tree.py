"""promoted/files: the live content of promoted files, at their absolute paths under it, written
without ever following a link, so that nothing a server names lands outside it.

A promoted path comes from a server (its file names) or from manifest.json (which anyone with the
repository can edit), so it is checked again here: absolute, normalised (no `..`), and every
existing part of it under files/ a real directory, the file itself not a link. The writing itself
walks down from files/ one directory descriptor at a time with O_NOFOLLOW, so a link made between
the check and the write is refused too, not followed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from phoenix.errors import Refused
from phoenix.facts import fields

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
HINT = "phoenix writes nothing through a link nor outside promoted/: remove it, then promote again"


def parts(path: str) -> list[str]:
    """The components of a promoted absolute path, checked: ValueError for anything else."""
    fields.path(path)
    if path == "/":
        raise ValueError("path '/' is not a file that can be promoted")
    return path.split("/")[1:]


def check(root: Path, paths: Iterable[str]) -> None:
    """Refuse (before anything is written) if writing any of `paths` under `root` would follow
    a link or leave `root`: `root` and each existing parent a real directory, no path a link."""
    _real_dir(root.parent, "the promoted directory")
    if root.exists() or root.is_symlink():
        _real_dir(root, "promoted/files")
    for path in paths:
        try:
            names = parts(path)
        except ValueError as exc:
            raise Refused(f"refused to write promoted content: {exc}", hint=HINT) from exc
        here = root
        for name in names[:-1]:
            here = here / name
            if not (here.exists() or here.is_symlink()):
                break
            _real_dir(here, f"a parent of {fields.shown(path)}")
        else:
            target = here / names[-1]
            if target.is_symlink() or target.is_dir():
                raise Refused(
                    f"refused to write {fields.shown(path)}: {target} is a link or a directory",
                    hint=HINT,
                )


def _real_dir(path: Path, what: str) -> None:
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        kind = "a link" if stat.S_ISLNK(info.st_mode) else "not a directory"
        raise Refused(f"refused to write through {path} ({what}): it is {kind}", hint=HINT)


def write(root: Path, path: str, data: bytes, mode: int) -> None:
    """Write `data` at `path` under `root` (made if missing) with `mode`, whole or not at all,
    opening every directory on the way with O_NOFOLLOW: a link anywhere is refused, not followed."""
    names = parts(path)
    root.mkdir(mode=0o755, exist_ok=True)
    fd = os.open(root, DIR_FLAGS)
    try:
        for name in names[:-1]:
            below = _descend(fd, name, path)
            os.close(fd)
            fd = below
        _write_in(fd, names[-1], data, mode, path)
    finally:
        os.close(fd)


def _descend(fd: int, name: str, path: str) -> int:
    """The descriptor of directory `name` in `fd` (made if missing), never through a link."""
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=fd)
        return os.open(name, DIR_FLAGS, dir_fd=fd)
    except OSError as exc:  # ELOOP: a link; ENOTDIR: a file
        raise Refused(
            f"refused to write {fields.shown(path)}: its parent {name!r} is not a real directory",
            hint=HINT,
        ) from exc


def _write_in(fd: int, name: str, data: bytes, mode: int, path: str) -> None:
    try:
        info: os.stat_result | None = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise Refused(f"refused to write {fields.shown(path)}: not a regular file there", hint=HINT)
    tmp = f".{name[:200]}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=fd)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(tmp, flags, 0o600, dir_fd=fd)
    try:
        with os.fdopen(out, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
            os.fchmod(stream.fileno(), mode)
        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=fd)
        raise


def prune(root: Path, keep: set[str]) -> None:
    """Remove files under `root` no entry refers to any more, and the directories left empty;
    links are removed (never followed), `root` itself must be a real directory."""
    if not (root.exists() or root.is_symlink()):
        return
    _real_dir(root, "promoted/files")
    for top, dirs, files in os.walk(root, topdown=False, followlinks=False):
        here = Path(top)
        for name in files + [d for d in dirs if (here / d).is_symlink()]:
            if "/" + (here / name).relative_to(root).as_posix() not in keep:
                (here / name).unlink()
        if here != root and not any(here.iterdir()):
            here.rmdir()


def mode_of(live: str | None) -> int:
    """The mode a promoted file is kept with in the repository: its live permission bits (not
    the setuid/setgid/sticky ones; apply.sh sets those in the image), readable by its owner."""
    if live is None:
        return 0o600
    return (int(fields.mode(live), 8) & 0o777) | 0o600

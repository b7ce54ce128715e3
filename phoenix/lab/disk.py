"""A container's files read from its disk by the host, without the container's tools.

Where the host can see a server's disk (the lab: the container's root file system on the storage
pool), phoenix reads it directly: the drift scan's second witness (phoenix.drift.witness) and the
bake's baseline (phoenix.image.bake) read it here. The walk never follows a symbolic link
(os.fwalk with follow_symlinks=False, every file opened with O_NOFOLLOW relative to its
directory's descriptor): a link inside a container can point anywhere on the host. It stays on the
root file system's device (as find -xdev does) and is capped in entries and time. Owners are mapped
back through the container's id map (the host's owner of the root directory is the container's
root).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_ENTRIES = 2_000_000
CHUNK = 1 << 20


class DiskError(Exception):
    """The disk could not be read whole (too many entries, too slow)."""


@dataclass(frozen=True)
class DiskFile:
    """A file as the disk holds it, in the container's ids."""

    type: str  # find's %y letters: f d l p s c b
    mode: str
    uid: int
    gid: int
    size: int
    ctime: float
    mtime: float = 0.0
    inode: int = 0
    target: str | None = None
    sha256: str | None = None


def _always(path: str) -> bool:
    return True


def read_disk(
    rootfs: Path,
    roots: Sequence[str],
    deadline: float,
    hashing: Callable[[str], bool] = _always,
) -> dict[str, DiskFile]:
    """Every entry under `roots` (container paths) on the disk mounted at `rootfs`; the regular
    files for which `hashing` (given the path) is true are hashed, by default every one."""
    top = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        base = os.fstat(top)
        found: dict[str, DiskFile] = {}
        for root in roots:
            for path, entry in _walk(top, root, base, deadline, hashing):
                found[path] = entry
                if len(found) > MAX_ENTRIES:
                    raise DiskError(f"more than {MAX_ENTRIES} entries under the roots")
        return found
    finally:
        os.close(top)


def _walk(
    top: int, root: str, base: os.stat_result, deadline: float, hashing: Callable[[str], bool]
) -> Iterator[tuple[str, DiskFile]]:
    fd = _open_dir(top, root)
    if fd is None:
        return
    try:
        st = os.fstat(fd)
        if st.st_dev != base.st_dev:
            return
        yield root, _entry(st, base)
        for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
            if time.monotonic() > deadline:
                raise DiskError("reading the disk outlived the scan's deadline")
            here = root if dirpath == "." else f"{root.rstrip('/')}/{dirpath[2:]}"
            keep = []
            for name in dirnames:  # links to directories among them: entries, never descended
                child = _stat(dirfd, name)
                if child is None or child.st_dev != base.st_dev:
                    continue  # gone, or another file system mounted here (find -xdev skips it)
                if stat.S_ISLNK(child.st_mode):
                    entry = _file(dirfd, name, base, False)
                    if entry is not None:
                        yield _join(here, name), entry
                    continue
                keep.append(name)
                yield _join(here, name), _entry(child, base)
            dirnames[:] = keep
            for name in filenames:
                path = _join(here, name)
                entry = _file(dirfd, name, base, hashing(path))
                if entry is not None:  # None: gone since it was listed
                    yield path, entry
    finally:
        os.close(fd)


def _open_dir(top: int, root: str) -> int | None:
    """The directory `root` under the disk's top, every component opened without following a
    link; None when it is missing, or is not a directory (a link included)."""
    fd = os.dup(top)
    try:
        for part in [p for p in root.split("/") if p]:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError:
        os.close(fd)
        return None
    return fd


def _join(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def _entry(
    st: os.stat_result, base: os.stat_result, target: str | None = None, sha256: str | None = None
) -> DiskFile:
    mode, root_uid, root_gid = st.st_mode, base.st_uid, base.st_gid
    return DiskFile(  # positional: ~8,000 of these per server read
        _TYPES.get(stat.S_IFMT(mode), "?"),
        f"{mode & 0o7777:04o}",
        st.st_uid - root_uid if st.st_uid >= root_uid else st.st_uid,
        st.st_gid - root_gid if st.st_gid >= root_gid else st.st_gid,
        st.st_size,
        st.st_ctime,
        st.st_mtime,
        st.st_ino,
        target,
        sha256,
    )


def _stat(dirfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _file(dirfd: int, name: str, base: os.stat_result, hash_file: bool) -> DiskFile | None:
    st = _stat(dirfd, name)
    if st is None:
        return None
    if stat.S_ISLNK(st.st_mode):
        try:
            return _entry(st, base, os.readlink(name, dir_fd=dirfd))
        except FileNotFoundError:
            return None
    if not hash_file or not stat.S_ISREG(st.st_mode):
        return _entry(st, base)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    except OSError:
        return _entry(st, base)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return _entry(st, base)
        digest = hashlib.sha256()
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return _entry(st, base, sha256=digest.hexdigest())


# find's %y letter of each file type; "?" for any other
_TYPES = {
    stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFIFO: "p",
    stat.S_IFSOCK: "s", stat.S_IFCHR: "c", stat.S_IFBLK: "b",
}  # fmt: skip

"""A second witness: a server's files read from its disk by the host, without the server's tools.

The SSH scan believes what the server's shell, find and sha256sum print. A compromised server can
lie: a wrapper earlier in root's PATH drops a file from find's output or prints the image's hash of
a file it changed, and a bind mount hides a directory from every tool inside. Where the provider
can see the server's disk without the server (the lab: the container's root file system on the
storage pool, from the host; in a cloud, a snapshot of the volume), phoenix reads the same roots
from there and compares them with what the server said. Any disagreement (a file the server did
not show, or showed other than the disk holds) is a high finding, and the server is untrusted.

The walk never follows a symbolic link (os.fwalk with follow_symlinks=False, every file opened
with O_NOFOLLOW relative to its directory's descriptor): a link inside a container can point
anywhere on the host. It stays on the root file system's device (as find -xdev does) and is
capped in entries and time. Owners are mapped back through the container's id map (the host's
owner of the root directory is the container's root). Files whose status changed on the disk
after the scan began are not compared: they changed, the server did not lie about them.

Every regular file the server showed must have on the disk the inode, mtime and ctime it showed:
the container cannot set a ctime, so a file written since has another one there. The host reads
and hashes every file whose hash came from the server (this scan's, or an earlier one's through
the cache), and not the files whose hash phoenix took from their image's baseline because their
ctime is before the server's first start (phoenix.facts.files, SETTLED): the disk's own ctime
proves those unchanged since the image, whatever the server says.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from phoenix.config import Severity
from phoenix.drift.diff import Finding
from phoenix.facts import FileFact

HIDDEN = "witness.hidden"  # on the disk, not in what the server showed
FORGED = "witness.forged"  # shown by the server, not what the disk holds
MAX_ENTRIES = 2_000_000
MAX_FINDINGS = 50  # disagreements listed one by one; the rest are counted in one more finding
SLACK = 0.0  # seconds before the scan began still counted as during it (the lab shares a clock)
CLOCK_SLACK = 1e-5  # seconds: a time printed by find and one read by os.stat may round apart
CHUNK = 1 << 20


class WitnessError(Exception):
    """The disk could not be read whole (too many entries, too slow): the server is untrusted."""


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


def check(
    disk: Path,
    roots: Sequence[str],
    shown: dict[str, FileFact],
    began: float,
    deadline: float,
    from_image: AbstractSet[str] = frozenset(),
) -> list[Finding]:
    """What the server `shown` of `roots` and its `disk` disagree on (changes since `began`, on
    the disk's clock, left out); WitnessError if the disk cannot be read whole by `deadline`.
    `from_image`: files whose hash phoenix took from their image's baseline (a stamp settled
    before the server started): their stamp on the disk proves them, they are not read."""

    def hashed_by_the_server(path: str) -> bool:
        fact = shown.get(path)
        return fact is not None and fact.sha256 is not None and path not in from_image

    roots = [r.rstrip("/") or "/" for r in roots]
    try:
        found = read_disk(disk, roots, deadline, hashing=hashed_by_the_server)
    except OSError as exc:
        raise WitnessError(f"{disk}: {exc.strerror or exc}") from exc
    return compare(shown, found, began)


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
                    raise WitnessError(f"more than {MAX_ENTRIES} entries under the roots")
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
                raise WitnessError("reading the disk outlived the scan's deadline")
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


def _entry(st: os.stat_result, base: os.stat_result, target: str | None = None) -> DiskFile:
    return DiskFile(
        type=_type(st.st_mode),
        mode=f"{stat.S_IMODE(st.st_mode):04o}",
        uid=_unmapped(st.st_uid, base.st_uid),
        gid=_unmapped(st.st_gid, base.st_gid),
        size=st.st_size,
        ctime=st.st_ctime,
        mtime=st.st_mtime,
        inode=st.st_ino,
        target=target,
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
    entry = _entry(st, base)
    if not stat.S_ISREG(st.st_mode) or not hash_file:
        return entry
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    except OSError:
        return entry
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return entry
        digest = hashlib.sha256()
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return DiskFile(**{**entry.__dict__, "sha256": digest.hexdigest()})


def _type(mode: int) -> str:
    for test, letter in (
        (stat.S_ISREG, "f"), (stat.S_ISDIR, "d"), (stat.S_ISLNK, "l"), (stat.S_ISFIFO, "p"),
        (stat.S_ISSOCK, "s"), (stat.S_ISCHR, "c"), (stat.S_ISBLK, "b"),
    ):  # fmt: skip
        if test(mode):
            return letter
    return "?"


def _unmapped(host_id: int, base: int) -> int:
    """The container's id of a host id, the root directory's owner being its root (0)."""
    return host_id - base if host_id >= base else host_id


def compare(shown: dict[str, FileFact], disk: dict[str, DiskFile], started: float) -> list[Finding]:
    """Where what the server showed and what its disk holds disagree; changes made on the disk
    since `started` (epoch seconds) are left out."""
    since = started - SLACK
    found: list[Finding] = []
    for path in sorted(disk.keys() - shown.keys()):
        if disk[path].ctime < since and not _changed_dir(disk, path, since):
            found.append(_finding(HIDDEN, path, "not shown by the server", _show(disk[path])))
    for path in sorted(shown.keys() - disk.keys()):
        if not _changed_dir(disk, path, since):
            found.append(_finding(FORGED, path, _show(shown[path]), "not on the disk"))
    for path in sorted(shown.keys() & disk.keys()):
        was, real = shown[path], disk[path]
        if real.ctime >= since:
            continue
        if _differs(was, real):
            found.append(_finding(FORGED, path, _show(was), _show(real)))
    return _capped(found)


def _changed_dir(disk: dict[str, DiskFile], path: str, since: float) -> bool:
    """Whether the directory holding `path` changed during the scan (an entry came or went)."""
    parent = path.rsplit("/", 1)[0] or "/"
    entry = disk.get(parent)
    return entry is None or entry.ctime >= since


def _differs(was: FileFact, real: DiskFile) -> bool:
    if (was.type, was.mode, was.uid, was.gid) != (real.type, real.mode, real.uid, real.gid):
        return True
    if was.type == "l":
        return was.target != real.target
    if was.type != "f":
        return False
    if was.size != real.size or not _same_stamp(was, real):
        return True
    return was.sha256 is not None and real.sha256 is not None and was.sha256 != real.sha256


def _same_stamp(was: FileFact, real: DiskFile) -> bool:
    """Whether the disk holds the file as the server stamped it (inode, mtime, ctime)."""
    return (
        was.inode == real.inode
        and abs(was.mtime - real.mtime) <= CLOCK_SLACK
        and abs(was.ctime - real.ctime) <= CLOCK_SLACK
    )


def _show(entry: FileFact | DiskFile) -> str:
    text = f"{entry.type} {entry.mode} {entry.uid}:{entry.gid} {entry.size}"
    if entry.target is not None:
        text += f" -> {entry.target}"
    if entry.sha256:
        text += f" sha256:{entry.sha256[:16]}"
    return text


def _finding(kind: str, path: str, before: str, after: str) -> Finding:
    return Finding(kind=kind, subject=path, severity=Severity.HIGH, before=before, after=after)


def _capped(found: list[Finding]) -> list[Finding]:
    if len(found) <= MAX_FINDINGS:
        return found
    rest = len(found) - MAX_FINDINGS
    more = _finding(FORGED, "...", "", f"{rest} more disagreement(s) not listed")
    return [*found[:MAX_FINDINGS], more]

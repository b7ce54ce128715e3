"""A second witness: a server's files read from its disk by the host, without the server's tools.

The SSH scan believes what the server's shell, find and sha256sum print. A compromised server can
lie: a wrapper earlier in root's PATH drops a file from find's output or prints the image's hash of
a file it changed, and a bind mount hides a directory from every tool inside. Where the provider
can see the server's disk without the server (the lab: the container's root file system on the
storage pool, from the host; in a cloud, a snapshot of the volume), phoenix reads the same roots
from there and compares them with what the server said. Any disagreement (a file the server did
not show, or showed other than the disk holds) is a high finding, and the server is untrusted.

The disk is read by phoenix.lab.disk: no link followed, one device, capped in entries and time,
owners in the container's ids. Files whose status changed on the disk after the scan began are
not compared: they changed, the server did not lie about them.

Every regular file the server showed must have on the disk the inode, mtime and ctime it showed:
the container cannot set a ctime, so a file written since has another one there. The host reads
and hashes every file whose hash came from the server (this scan's, or an earlier one's through
the cache), and not the files whose hash phoenix took from their image's baseline because their
ctime is before the server's first start (phoenix.facts.files, SETTLED): the disk's own ctime
proves those unchanged since the image, whatever the server says.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path

from phoenix.config import Severity
from phoenix.drift.diff import Finding
from phoenix.facts import FileFact
from phoenix.facts.files import SETTLED_CTIME
from phoenix.lab.disk import DiskError, DiskFile, read_disk

HIDDEN = "witness.hidden"  # on the disk, not in what the server showed
FORGED = "witness.forged"  # shown by the server, not what the disk holds
MAX_FINDINGS = 50  # disagreements listed one by one; the rest are counted in one more finding
SLACK = 0.0  # seconds before the scan began still counted as during it (the lab shares a clock)
CLOCK_SLACK = 1e-5  # seconds: a time printed by find and one read by os.stat may round apart


# The disk could not be read whole (too many entries, too slow): the server is untrusted.
WitnessError = DiskError


def check(
    disk: Path,
    roots: Sequence[str],
    shown: dict[str, FileFact],
    began: float,
    deadline: float,
    from_image: AbstractSet[str] = frozenset(),
    settled: float | None = None,
) -> list[Finding]:
    """What the server `shown` of `roots` and its `disk` disagree on (changes since `began`, on
    the disk's clock, left out); WitnessError if the disk cannot be read whole by `deadline`.
    `from_image`: files whose hash phoenix took from their image's baseline (a stamp settled
    before the server started): their stamp on the disk proves them, they are not read.
    `settled`: the server's first start, which a file the server showed SETTLED must not have
    been changed after on the disk (files.SETTLED_CTIME)."""

    def hashed_by_the_server(path: str) -> bool:
        fact = shown.get(path)
        return fact is not None and fact.sha256 is not None and path not in from_image

    roots = [r.rstrip("/") or "/" for r in roots]
    try:
        found = read_disk(disk, roots, deadline, hashing=hashed_by_the_server)
    except OSError as exc:
        raise WitnessError(f"{disk}: {exc.strerror or exc}") from exc
    return compare(shown, found, began, settled)


def compare(
    shown: dict[str, FileFact],
    disk: dict[str, DiskFile],
    started: float,
    settled: float | None = None,
) -> list[Finding]:
    """Where what the server showed and what its disk holds disagree; changes made on the disk
    since `started` (epoch seconds) are left out. `settled`: as in `check`."""
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
        if _differs(was, real, settled):
            found.append(_finding(FORGED, path, _show(was), _show(real)))
    return _capped(found)


def _changed_dir(disk: dict[str, DiskFile], path: str, since: float) -> bool:
    """Whether the directory holding `path` changed during the scan (an entry came or went)."""
    parent = path.rsplit("/", 1)[0] or "/"
    entry = disk.get(parent)
    return entry is None or entry.ctime >= since


def _differs(was: FileFact, real: DiskFile, settled: float | None = None) -> bool:
    if (was.type, was.mode, was.uid, was.gid) != (real.type, real.mode, real.uid, real.gid):
        return True
    if was.type == "l":
        return was.target != real.target
    if was.type != "f":
        return False
    if was.size != real.size or not _same_stamp(was, real, settled):
        return True
    return was.sha256 is not None and real.sha256 is not None and was.sha256 != real.sha256


def _same_stamp(was: FileFact, real: DiskFile, settled: float | None = None) -> bool:
    """Whether the disk holds the file as the server stamped it (inode, mtime, ctime); a ctime
    shown SETTLED must be, on the disk, not after the server's first start (`settled`)."""
    if was.ctime == SETTLED_CTIME:
        ctime = settled is not None and real.ctime <= settled + CLOCK_SLACK
    else:
        ctime = abs(was.ctime - real.ctime) <= CLOCK_SLACK
    return was.inode == real.inode and abs(was.mtime - real.mtime) <= CLOCK_SLACK and ctime


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

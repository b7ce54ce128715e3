"""The second witness: a server's files read from its disk, compared with what the server said."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from phoenix.drift import witness
from phoenix.facts import FileFact, files
from phoenix.lab import disk


def _disk(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc" / "cron.d").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc" / "cron.d" / "job").write_text("* * * * * root true\n")
    return root


def _shown(disk: dict[str, disk.DiskFile]) -> dict[str, FileFact]:
    """What an honest server would have printed of the same disk."""
    return {
        path: FileFact(
            d.type,
            d.mode,
            d.uid,
            d.gid,
            "root",
            "root",
            d.size,
            d.mtime,
            d.ctime,
            d.inode,
            d.target,
            d.sha256,
        )
        for path, d in disk.items()
    }


def _read(root: Path) -> dict[str, disk.DiskFile]:
    return disk.read_disk(root, ["/etc", "/missing"], time.monotonic() + 30)


def test_an_honest_server_agrees_with_its_disk(tmp_path: Path) -> None:
    disk = _read(_disk(tmp_path))
    assert set(disk) == {"/etc", "/etc/passwd", "/etc/cron.d", "/etc/cron.d/job"}
    digest = hashlib.sha256(b"root:x:0:0::/root:/bin/sh\n").hexdigest()
    assert disk["/etc/passwd"].sha256 == digest
    assert witness.compare(_shown(disk), disk, time.time() + 5) == []


def test_a_file_the_server_hid_and_a_hash_it_forged_are_high_findings(tmp_path: Path) -> None:
    disk = _read(_disk(tmp_path))
    shown = _shown(disk)
    del shown["/etc/cron.d/job"]  # a wrapper of find dropped it
    real = shown["/etc/passwd"]
    shown["/etc/passwd"] = FileFact(**{**real.__dict__, "sha256": "0" * 64})  # the image's hash
    shown["/etc/ghost"] = real  # shown, but not on the disk
    found = witness.compare(shown, disk, time.time() + 5)
    assert [(f.kind, f.subject) for f in found] == [
        (witness.HIDDEN, "/etc/cron.d/job"),
        (witness.FORGED, "/etc/ghost"),
        (witness.FORGED, "/etc/passwd"),
    ]
    assert {f.severity for f in found} == {"high"}


def test_the_host_hashes_only_what_the_server_hashed_and_checks_the_rest_by_stamp(
    tmp_path: Path,
) -> None:
    root = _disk(tmp_path)
    cached = {p: replace(f, sha256=None) for p, f in _shown(_read(root)).items()}
    hashed: list[str] = []
    real = disk._file

    def counting(dirfd: int, name: str, base: os.stat_result, hash_it: bool) -> object:
        if hash_it:
            hashed.append(name)
        return real(dirfd, name, base, hash_it)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(disk, "_file", counting)
        assert witness.check(root, ["/etc"], cached, time.time() + 5, time.monotonic() + 30) == []
        assert hashed == []  # no hash shown: nothing to read
        honest = _shown(_read(root))
        hashed.clear()
        assert witness.check(root, ["/etc"], honest, time.time() + 5, time.monotonic() + 30) == []
        assert sorted(hashed) == ["job", "passwd"]  # hashes the server gave: read and compared
        hashed.clear()
        image = {"/etc/passwd", "/etc/cron.d/job"}  # hashes phoenix took from the image
        later = time.monotonic() + 30
        assert witness.check(root, ["/etc"], honest, time.time() + 5, later, image) == []
        assert hashed == []
    # rewritten in place, same size, then shown with its old stamp and no hash (a cache hit the
    # server claimed): the disk's ctime gives it away, without reading the content
    job = root / "etc" / "cron.d" / "job"
    job.write_text("* * * * * root evil\n"[: job.stat().st_size])
    found = witness.check(root, ["/etc"], cached, time.time() + 5, time.monotonic() + 30)
    assert [(f.kind, f.subject) for f in found] == [(witness.FORGED, "/etc/cron.d/job")]


def test_a_file_shown_settled_must_not_have_changed_on_the_disk_since_the_first_start(
    tmp_path: Path,
) -> None:
    """A server shows SETTLED for the ctime of a file not changed since its first start: the
    disk must agree (its ctime not after that start); a file changed since that the server
    shows settled anyway is forged."""
    disk = _read(_disk(tmp_path))
    passwd = disk["/etc/passwd"]
    shown = _shown(disk)
    shown["/etc/passwd"] = replace(shown["/etc/passwd"], ctime=files.SETTLED_CTIME)
    later, now = passwd.ctime + 10, time.time() + 5
    assert witness.compare(shown, disk, now, settled=later) == []
    [forged] = witness.compare(shown, disk, now, settled=passwd.ctime - 10)
    assert (forged.kind, forged.subject) == (witness.FORGED, "/etc/passwd")
    assert witness.compare(shown, disk, now) != []  # no first start known: nothing is settled


def test_changes_made_during_the_scan_are_not_disagreements(tmp_path: Path) -> None:
    root = _disk(tmp_path)
    started = time.time() - 100  # the scan began before everything on the disk changed
    disk = _read(root)
    shown = _shown(disk)
    del shown["/etc/cron.d/job"]
    assert witness.compare(shown, disk, started) == []


def test_links_are_never_followed_out_of_the_disk(tmp_path: Path) -> None:
    root = _disk(tmp_path)
    secret = tmp_path / "host-secret"
    secret.write_text("host only")
    os.symlink(secret, root / "etc" / "evil")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "etc" / "cron.d" / "linked")
    os.symlink(tmp_path, root / "srv")  # a root that is a link: not read at all
    found = disk.read_disk(root, ["/etc", "/srv"], time.monotonic() + 30)
    assert found["/etc/evil"].type == "l" and found["/etc/evil"].sha256 is None
    assert found["/etc/evil"].target == str(secret)
    assert not any(p.startswith("/srv") for p in found)
    assert "/etc/cron.d/linked/x" not in found


def test_a_walk_past_its_deadline_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(witness.WitnessError, match="deadline"):
        disk.read_disk(_disk(tmp_path), ["/etc"], time.monotonic() - 1)


def test_many_disagreements_are_capped(tmp_path: Path) -> None:
    root = _disk(tmp_path)
    for i in range(witness.MAX_FINDINGS + 5):
        (root / "etc" / f"f{i}").write_text("x")
    disk = _read(root)
    shown = {p: f for p, f in _shown(disk).items() if not p.startswith("/etc/f")}
    found = witness.compare(shown, disk, time.time() + 5)
    assert len(found) == witness.MAX_FINDINGS + 1
    assert found[-1].after == "5 more disagreement(s) not listed"


def test_a_link_to_a_directory_is_a_link_with_its_target(tmp_path: Path) -> None:
    root = _disk(tmp_path)
    os.symlink("cron.d", root / "etc" / "cron.link")
    disk = _read(root)
    assert disk["/etc/cron.link"].type == "l" and disk["/etc/cron.link"].target == "cron.d"
    assert "/etc/cron.link/job" not in disk

"""write_atomic: the old content or the new, never a part; no temp file left behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.atomic import write_atomic


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_writes_str_and_bytes_creating_the_directory(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a" / "b.txt", "é\n")
    write_atomic(tmp_path / "c.bin", b"\x00\xff")
    assert (tmp_path / "a" / "b.txt").read_bytes() == "é\n".encode()
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\xff"


def test_replaces_and_leaves_only_the_file(tmp_path: Path) -> None:
    path = tmp_path / "main.tf"
    path.write_text("old")
    write_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["main.tf"]


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize(("mode", "expected"), [(None, 0o644), (0o600, 0o600), (0o755, 0o755)])
def test_mode(tmp_path: Path, mode: int | None, expected: int) -> None:
    path = tmp_path / "f"
    write_atomic(path, "x", mode=mode)
    assert path.stat().st_mode & 0o777 == expected


def test_check_sees_a_hidden_temp_beside_the_file_and_can_refuse_it(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text("old")
    seen: list[Path] = []

    def refuse(candidate: Path) -> None:
        seen.append(candidate)
        assert candidate.read_text() == "new"
        assert candidate.stat().st_mode & 0o777 == 0o600
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        write_atomic(path, "new", mode=0o600, check=refuse)
    (candidate,) = seen
    assert candidate.parent == tmp_path and candidate.name.startswith(".haproxy.cfg.")
    assert candidate.name.endswith(".tmp") and not candidate.exists()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["haproxy.cfg"]


def test_a_failed_write_removes_the_temp_and_keeps_the_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("old")

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_a_stale_temp_of_the_same_writer_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "f"
    seen: list[Path] = []
    write_atomic(path, "first", check=seen.append)
    seen[0].write_text("left by a writer that died")
    write_atomic(path, "second")
    assert path.read_text() == "second" and not seen[0].exists()

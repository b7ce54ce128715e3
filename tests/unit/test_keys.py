"""The operator key: made once, private, and its fingerprint as OpenSSH prints it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from phoenix.host import keys


def test_made_once_then_reused(tmp_path: Path) -> None:
    first, made = keys.ensure(tmp_path)
    again, made_again = keys.ensure(tmp_path)
    assert made and not made_again
    assert first == again
    assert first.private_path.stat().st_mode & 0o777 == 0o600


def test_loose_mode_is_tightened(tmp_path: Path) -> None:
    key, _ = keys.ensure(tmp_path)
    key.private_path.chmod(0o644)
    keys.ensure(tmp_path)
    assert key.private_path.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="needs ssh-keygen")
def test_fingerprint_matches_openssh(tmp_path: Path) -> None:
    key, _ = keys.ensure(tmp_path)
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(key.private_path.with_suffix(".pub"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert key.fingerprint in out

"""`phoenix doctor` checks that the state directory and its files are their owner's only."""

from __future__ import annotations

import subprocess
from pathlib import Path

from phoenix.lab import doctor
from phoenix.state import STATE_FILE, Store


def test_a_private_state_directory_passes(tmp_path: Path) -> None:
    home = tmp_path / "my home"
    Store.open(home).close()
    check = doctor._private(home)
    assert check.ok and check.name == "state permissions"
    assert doctor._private(tmp_path / "none yet").ok


def test_a_state_directory_others_can_read_fails_with_its_fix(tmp_path: Path) -> None:
    home = tmp_path / "my home"
    Store.open(home).close()
    (home / STATE_FILE).chmod(0o644)
    check = doctor._private(home)
    assert not check.ok and check.required
    assert f"{home / STATE_FILE} has mode 644" in check.detail
    assert check.fix == f"chmod -R go-rwx '{home}'"
    subprocess.run(check.fix, shell=True, check=True)  # the fix fixes it
    assert doctor._private(home).ok
    home.chmod(0o755)
    assert "has mode 755" in doctor._private(home).detail
    (home / "logs").mkdir(mode=0o700)
    home.chmod(0o700)
    (home / "logs" / "crash.log").write_text("x")
    (home / "logs" / "crash.log").chmod(0o640)
    assert not doctor._private(home).ok


def test_a_provider_binary_terraform_installs_0755_in_a_private_directory_passes(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    Store.open(home).close()
    plugins = home / "terraform" / "web" / ".terraform" / "providers"
    plugins.mkdir(parents=True)
    (plugins / "terraform-provider-lxd").write_text("binary")
    (plugins / "terraform-provider-lxd").chmod(0o755)
    assert doctor._private(home).ok  # others cannot enter the state directory at all

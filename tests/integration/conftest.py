"""Integration tests drive the real lab: the LXD daemon, its bridge, sshd in the containers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from phoenix.config import load
from phoenix.host import keys
from phoenix.lab import project
from phoenix.lab.lxd import LXD
from phoenix.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
PHOENIX = [sys.executable, "-m", "phoenix"]


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


@dataclass
class Lab:
    home: Path
    env: dict[str, str]
    lxd: LXD  # seen from the workspace's project

    def lxc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`lxc` by hand, as an operator would, in the workspace's project."""
        command = ["lxc", f"--project={self.lxd.project}", *args]  # before any `--`
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    @property
    def tf_settings(self) -> dict[str, str]:
        """What phoenix gives Terraform so that its provider acts in the workspace's project."""
        return {"lxd_config_dir": str(project.of(self.home).client_dir)}

    def phoenix(self, *args: str, timeout: float = 900) -> Run:
        proc = subprocess.run(
            [*PHOENIX, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    @property
    def workspace(self) -> Workspace:
        config = Path(self.env["PHOENIX_CONFIG"])
        return Workspace(config, load(config), self.home)

    @property
    def key(self) -> keys.OperatorKey:
        key = keys.load(self.home)
        assert key is not None
        return key


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    # What the tests make in-process in the state directory is the owner's alone, as phoenix's
    # own commands make it (they run with umask 077): doctor checks it.
    os.umask(0o077)
    home = tmp_path_factory.mktemp("phoenix-home")
    env = {**os.environ, "PHOENIX_HOME": str(home), "PHOENIX_CONFIG": str(REPO / "phoenix.toml")}
    first = Lab(home, env, LXD()).phoenix("lab", "up")
    assert first.rc == 0, first.stderr + first.stdout
    the_lab = Lab(home, env, project.of(home).lxd())  # the test workspace's own LXD project
    yield the_lab
    remove_project(the_lab.lxd)


def remove_project(lxd: LXD) -> None:
    """Delete a test workspace's project with whatever it still holds."""
    for instance in lxd.instances():
        lxd.delete(instance.name)
    for image in lxd.images():
        lxd.delete_image(image.fingerprint)
    lxd.delete_project(lxd.project)


@pytest.fixture
def server_names(lab: Lab) -> Iterator[list[str]]:
    """Names for test servers; every one of them is deleted afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        lab.lxd.delete(name)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"

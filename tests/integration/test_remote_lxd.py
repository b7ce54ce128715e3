"""[lxd] endpoint: a whole bake, deploy, rebuild and drift scan through the lab's daemon reached
over HTTPS (127.0.0.1:8443, a client certificate trusted there, the server's pinned), with the
daemon's unix socket hidden from phoenix and everything it runs (lxc, Packer, Terraform)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.load import Load
from bench.remote import endpoint, make_certificate, section
from phoenix.lab.lxd import LXD, SOCKET
from tests.integration.conftest import REPO, Lab, Run, remove_project

pytestmark = pytest.mark.integration

PORT = 18097
# phoenix in a mount namespace of its own where the daemon's socket is /dev/null: whatever
# phoenix or a tool it starts does through the socket fails
HIDDEN = [
    "unshare", "--mount", "--propagation", "private", "sh", "-c",
    f'mount --bind /dev/null {SOCKET} && exec "$@"', "sh",
]  # fmt: skip


@dataclass
class Remote:
    root: Path
    lxd: LXD  # the daemon through its socket, for the test's own checks
    lxd_section: str

    def phoenix(self, *args: str, config: str = "phoenix.toml", home: str = "home") -> Run:
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PHOENIX_HOME": str(self.root / home),
            "PHOENIX_CONFIG": str(self.root / config),
        }
        proc = subprocess.run(
            [*HIDDEN, "env", *(f"{k}={v}" for k, v in env.items()), sys.executable,
             "-m", "phoenix", *args],
            capture_output=True, text=True, cwd=REPO, timeout=900, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def config(self, name: str, lxd_section: str) -> str:
        (self.root / name).write_text(
            lxd_section + f'[images.web]\n\n[fleets.rem]\nimage = "web"\nsize = 2\n'
            f"listen_port = {PORT}\n"
        )
        return name

    def project(self, home: str = "home") -> str | None:
        named = self.root / home / "lxd-project"
        return named.read_text().strip() if named.exists() else None


@pytest.fixture(scope="module")
def remote(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    root = tmp_path_factory.mktemp("remote")
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "infra", root / "infra")
    with endpoint(root, f"phoenix-test-{uuid.uuid4().hex[:6]}") as lxd_section:
        the = Remote(root, LXD(), lxd_section)
        the.config("phoenix.toml", lxd_section)
        yield the
        the.phoenix("destroy", "rem", "--yes")
        made = the.project()
        if made and made in the.lxd.projects():
            remove_project(the.lxd.in_project(made))


def _servers(remote: Remote) -> list[dict[str, Any]]:
    run = remote.phoenix("status", "rem", "--json")
    assert run.rc == 0, run.stderr
    status: Any = run.json()
    assert status["serving"] == 2 and all(s["healthy"] for s in status["servers"]), status
    return list(status["servers"])


def test_bake_deploy_rebuild_and_drift_over_https_with_the_socket_hidden(remote: Remote) -> None:
    assert remote.phoenix("lab", "status").rc != 0  # a remote workspace has no lab of its own
    baked = remote.phoenix("image", "bake", "web")
    assert baked.rc == 0, baked.stderr
    project = remote.project()
    assert project and project in remote.lxd.projects()  # made there, through HTTPS
    client = (remote.root / "home" / "lxc" / "config.yml").read_text()
    assert "default-remote: phoenix" in client and "unix://" not in client

    deployed = remote.phoenix("deploy", "rem")
    assert deployed.rc == 0, deployed.stderr
    first = {s["name"] for s in _servers(remote)}
    labelled = remote.lxd.in_project(project).fleet_instances("rem")
    assert set(labelled) == first

    with Load("127.0.0.1", PORT, max_requests=100_000, max_seconds=300) as load:
        rebuilt = remote.phoenix("rebuild", "rem", "--yes")
    assert rebuilt.rc == 0, rebuilt.stderr
    second = {s["name"] for s in _servers(remote)}
    assert not second & first
    assert load.total > 50 and load.failed == 0, load.errors

    drift = remote.phoenix("drift", "rem")
    assert drift.rc == 0, drift.stdout + drift.stderr
    assert "2 clean" in drift.stdout + drift.stderr


def _refused(run: Run, *expected: str) -> None:
    assert run.rc != 0
    assert "Traceback" not in run.stderr
    for text in expected:
        assert text in run.stderr, run.stderr


def test_a_wrong_fingerprint_or_an_untrusted_certificate_is_refused(remote: Remote) -> None:
    projects = set(remote.lxd.projects())
    url = "https://127.0.0.1:8443"
    wrong = remote.config("wrong.toml", section(url, *_trusted(remote), "ab" * 32))
    run = remote.phoenix("image", "bake", "web", config=wrong, home="wrong")
    _refused(run, "not the pinned " + "ab" * 32, "[lxd] fingerprint")

    crt, key = make_certificate(remote.root, "stranger")
    stranger = remote.config("stranger.toml", section(url, crt, key, _pinned(remote)))
    run = remote.phoenix("image", "bake", "web", config=stranger, home="stranger")
    _refused(run, "does not trust phoenix's client certificate", "lxc config trust add")

    crt, key = make_certificate(remote.root, "expired", days=-1)
    expired = remote.config("expired.toml", section(url, crt, key, _pinned(remote)))
    run = remote.phoenix("image", "bake", "web", config=expired, home="expired")
    _refused(run, "is valid only from", "lxc config trust add")

    closed = remote.config("closed.toml", remote.lxd_section.replace(":8443", ":8449"))
    run = remote.phoenix("image", "bake", "web", config=closed, home="closed")
    _refused(run, "cannot reach the LXD daemon at https://127.0.0.1:8449")

    assert set(remote.lxd.projects()) == projects  # nothing made anywhere, nothing fell back


def _trusted(remote: Remote) -> tuple[Path, Path]:
    lines = dict(line.split(" = ", 1) for line in remote.lxd_section.splitlines() if " = " in line)
    return Path(lines["client_cert"].strip('"')), Path(lines["client_key"].strip('"'))


def _pinned(remote: Remote) -> str:
    for line in remote.lxd_section.splitlines():
        if line.startswith("fingerprint = "):
            return line.split('"')[1]
    raise AssertionError(remote.lxd_section)

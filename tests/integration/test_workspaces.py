"""Two workspaces on one lab (two checkouts, or the test suite beside a user's lab): each bakes its
own image `web`, deploys its own image to its own fleet `web`, and never sees the other's
servers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.lab import project
from tests.integration.conftest import REPO, Lab, remove_project

pytestmark = pytest.mark.integration

# The same names in both workspaces: image web, fleet web. Only the load balancer's loopback
# address differs (two HAProxies cannot listen on one address and port).
CONFIG = """
[images.web]
template = "images/web.pkr.json"

[fleets.web]
image = "web"
size = 1
listen = "{listen}"
listen_port = 18380
"""


def workspace(lab: Lab, root: Path, listen: str) -> Lab:
    """A checkout of its own: config, images/, infra/ and a state directory."""
    root.mkdir()
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "infra", root / "infra")
    (root / "phoenix.toml").write_text(CONFIG.format(listen=listen))
    home = root / ".phoenix"
    env = {**lab.env, "PHOENIX_CONFIG": str(root / "phoenix.toml"), "PHOENIX_HOME": str(home)}
    ws = Lab(home, env, lab.lxd)
    key = ws.phoenix("lab", "up")  # lab-wide parts exist already: makes the workspace's project
    assert key.rc == 0, key.stderr + key.stdout
    return Lab(home, env, project.of(home).lxd())


@pytest.fixture
def two(lab: Lab, tmp_path: Path) -> Iterator[tuple[Lab, Lab]]:
    one = workspace(lab, tmp_path / "one", "127.0.0.2")
    other = workspace(lab, tmp_path / "other", "127.0.0.3")
    yield one, other
    for ws in (one, other):
        ws.phoenix("destroy", "web", "--yes")
        remove_project(ws.lxd)


def bake(ws: Lab) -> dict[str, object]:
    run = ws.phoenix("image", "bake", "web", "--json")
    assert run.rc == 0, run.stderr + run.stdout
    data = run.json()
    assert isinstance(data, dict)
    return data


def test_each_workspace_deploys_its_own_image_and_its_servers_are_clean(
    two: tuple[Lab, Lab],
) -> None:
    one, other = two
    assert one.lxd.project != other.lxd.project
    first = bake(one)
    second = bake(other)  # the same alias web-v001, in the other project: nothing taken over
    assert first["tag"] == second["tag"] == "web-v001"
    fingerprints = {ws.lxd.project: ws.lxd.image("web-v001") for ws in (one, other)}
    assert all(fingerprints.values())
    assert len({i.fingerprint for i in fingerprints.values() if i}) == 2

    for ws in (one, other):
        deployed = ws.phoenix("deploy", "web")
        assert deployed.rc == 0, deployed.stderr + deployed.stdout
    for ws in (one, other):
        servers = ws.lxd.instances()
        assert [s.name for s in servers] == ["web-g1-1"]  # its own, none of the other's
        image = fingerprints[ws.lxd.project]
        config = ws.lxd.client.instances.get("web-g1-1").config
        assert image and config["volatile.base_image"] == image.fingerprint  # its own bake
        drift = ws.phoenix("drift", "web", "--json")
        assert drift.rc == 0, drift.stdout + drift.stderr  # fresh servers of its own baseline
        scanned = drift.json()["servers"]  # type: ignore[index]
        assert [s["status"] for s in scanned] == ["clean"]

"""`phoenix image bake` with the real Packer, LXD and sshd: versions, smoke boot, faults."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from phoenix.host import ssh
from phoenix.image.registry import Registry, Status
from phoenix.lab import lab as labmod
from phoenix.state import Store
from tests.conftest import wait_until
from tests.integration.conftest import PHOENIX, REPO, Lab, unique

pytestmark = pytest.mark.integration

BROKEN = "echo about to fail; echo the provisioner broke >&2; exit 7"
NO_ADDRESS = "rm -f /etc/network/interfaces.d/eth0"


@pytest.fixture(scope="module")
def baked(lab: Lab) -> dict[str, object]:
    run = lab.phoenix("image", "bake", "web", "--force", "--json")
    assert run.rc == 0, run.stderr
    data = run.json()
    assert isinstance(data, dict)
    return data


@pytest.fixture
def faulty(lab: Lab, tmp_path: Path) -> Lab:
    """A config beside the repository's with images whose bakes go wrong in known ways."""
    shutil.copytree(REPO / "images", tmp_path / "images")
    template = json.loads((REPO / "images" / "web.pkr.json").read_text())

    def variant(name: str, inline: str) -> None:
        body = {**template, "provisioners": [{"type": "shell", "inline": [inline]}]}
        (tmp_path / "images" / f"{name}.pkr.json").write_text(json.dumps(body))

    variant("broken", BROKEN)
    variant("noaddr", NO_ADDRESS)
    variant("slow", "echo slow-started; sleep 120")
    (tmp_path / "images" / "badjson.pkr.json").write_text('{"builders": [')
    config = "".join(
        f'[images.{n}]\nhealth = {{ type = "tcp", port = 22, timeout = 20.0 }}\n'
        for n in ("broken", "noaddr", "slow", "badjson", "missing")
    )
    (tmp_path / "phoenix.toml").write_text(config)
    env = {**lab.env, "PHOENIX_CONFIG": str(tmp_path / "phoenix.toml")}
    return Lab(lab.home, env, lab.lxd)


def registry(lab: Lab) -> Registry:
    return Registry(Store.open(lab.home))


def leftovers(lab: Lab, name: str) -> list[str]:
    servers = [i.name for i in lab.lxd.instances() if name in i.name]
    images = [a for i in lab.lxd.images() for a in i.aliases if a.startswith(f"{name}-v")]
    return servers + images


def test_bake_records_a_ready_versioned_image_with_baseline(
    lab: Lab, baked: dict[str, object]
) -> None:
    assert baked["status"] == "ready" and baked["unchanged"] is False
    tag = str(baked["tag"])
    assert tag.startswith("web-v")
    assert lab.lxd.image(tag) is not None
    baseline = baked["baseline"]
    assert isinstance(baseline, dict) and baseline["files"] > 1000 and baseline["packages"] > 50
    assert {"template", "parent", "file:web/provision.sh"} <= set(baked["inputs"])  # type: ignore[arg-type]
    assert Path(str(baked["log"])).read_text()
    # the builder is gone; the smoke server was stopped unawaited, and LXD deletes it (ephemeral)
    wait_until(
        "no bake or smoke server left",
        lambda: not [i.name for i in lab.lxd.instances() if i.name.startswith("phoenix-")],
        timeout=60,
    )


def test_rebake_of_unchanged_template_is_a_noop(lab: Lab, baked: dict[str, object]) -> None:
    again = lab.phoenix("image", "bake", "web", "--json")
    assert again.rc == 0, again.stderr
    data = again.json()
    assert isinstance(data, dict)
    assert data["unchanged"] is True and data["tag"] == baked["tag"]


def test_servers_from_a_baked_image_serve_its_version_and_are_not_twins(
    lab: Lab, baked: dict[str, object], server_names: list[str]
) -> None:
    tag = str(baked["tag"])
    seen = set()
    for _ in range(2):
        name = unique("t-web")
        server_names.append(name)
        target = labmod.launch_server(lab.lxd, name, tag, lab.key)
        page = wait_until(
            "nginx to answer", lambda t=target: _get(f"http://{t.address}/"), timeout=30
        )
        assert tag in page
        with ssh.connect(target, lab.key.private_path) as session:
            machine_id = session.run("cat", "/etc/machine-id").stdout.strip()
            password_auth = session.run("sshd -T | grep -i '^passwordauthentication'").stdout
        assert "no" in password_auth
        seen.add((target.host_key, machine_id))
    assert len({k for k, _ in seen}) == 2 and len({m for _, m in seen}) == 2


def test_image_list_and_show(lab: Lab, baked: dict[str, object]) -> None:
    listed = lab.phoenix("image", "list", "--json")
    assert listed.rc == 0
    rows = listed.json()
    assert isinstance(rows, list)
    assert any(r["tag"] == baked["tag"] and r["status"] == "ready" for r in rows)
    shown = lab.phoenix("image", "show", str(baked["tag"]))
    assert shown.rc == 0 and "phoenix-base" in shown.stdout


def test_missing_template(faulty: Lab) -> None:
    run = faulty.phoenix("image", "bake", "missing")
    assert run.rc == 1 and "no Packer template" in run.stderr


def test_invalid_json(faulty: Lab) -> None:
    run = faulty.phoenix("image", "bake", "badjson")
    assert run.rc == 1 and "invalid JSON" in run.stderr


def test_unknown_image_is_refused(faulty: Lab) -> None:
    run = faulty.phoenix("image", "bake", "nosuch")
    assert run.rc == 2 and "defined images" in run.stderr


def test_failing_provisioner(faulty: Lab) -> None:
    run = faulty.phoenix("image", "bake", "broken")
    assert run.rc == 1
    assert "the provisioner broke" in run.stderr and "bake-broken-v" in run.stderr
    record = registry(faulty).all("broken")[-1]
    assert record.status is Status.FAILED and record.error
    assert leftovers(faulty, "broken") == []


def test_image_that_never_gets_an_address_fails_its_smoke_boot(faulty: Lab) -> None:
    run = faulty.phoenix("image", "bake", "noaddr")
    assert run.rc == 1 and "IPv4 address" in run.stderr
    record = registry(faulty).all("noaddr")[-1]
    assert record.status is Status.FAILED
    assert leftovers(faulty, "noaddr") == []


def test_ctrl_c_during_a_bake_leaves_nothing_behind(faulty: Lab) -> None:
    proc = subprocess.Popen(
        [*PHOENIX, "image", "bake", "slow"],
        env=faulty.env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job is
    )
    try:
        logs = faulty.home / "logs"
        wait_until(
            "the slow provisioner to start",
            lambda: any("slow-started" in p.read_text() for p in logs.glob("bake-slow-*.log")),
            timeout=120,
        )
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    record = registry(faulty).all("slow")[-1]
    assert record.status is Status.FAILED and record.error == "interrupted"
    wait_until("no leftovers", lambda: leftovers(faulty, "slow") == [], timeout=30)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None

"""`phoenix lab` against the real LXD daemon."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from phoenix.errors import HostKeyError
from phoenix.host import ssh
from phoenix.lab import lab as labmod
from phoenix.lab.lxd import LXD
from tests.conftest import wait_until
from tests.integration.conftest import Lab, unique

pytestmark = pytest.mark.integration


def test_second_up_changes_nothing(lab: Lab) -> None:
    again = lab.phoenix("lab", "up")
    assert again.rc == 0, again.stderr
    assert "nothing to change" in again.stdout
    status = lab.phoenix("lab", "status", "--json")
    assert status.rc == 0
    report = status.json()
    assert isinstance(report, dict) and report["up"] is True
    assert {c["name"] for c in report["components"]} >= {"daemon", "pool", "network", "base image"}


def test_up_after_daemon_killed_restarts_it(lab: Lab) -> None:
    # the daemon as `phoenix lab up` starts it: its containers' monitors and file helpers are
    # named `lxd` too, and any of them can have the lower pid, or be the older process
    daemon = subprocess.run(["pgrep", "-f", "^lxd --group"], capture_output=True, text=True)
    pid = int(daemon.stdout.split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_until("the daemon to be gone", lambda: not LXD().running(), timeout=30)
    down = lab.phoenix("lab", "status")
    assert down.rc == 1 and "not running" in down.stdout
    up = lab.phoenix("lab", "up")
    assert up.rc == 0, up.stderr
    assert "changed daemon" in up.stdout
    assert LXD().running()


def test_up_repairs_half_finished_lab(lab: Lab) -> None:
    cfg = lab.workspace.config.lab
    lab.lxd.set_profile_devices(labmod.BUILD_PROFILE, {})
    lab.lxd.delete_network(cfg.build_network)
    (lab.home / "lab" / "base-build").mkdir(parents=True, exist_ok=True)  # a build cut short
    up = lab.phoenix("lab", "up")
    assert up.rc == 0, up.stderr
    assert "build-network" in up.stdout and "profiles" in up.stdout
    assert lab.lxd.network(cfg.build_network) is not None
    assert lab.phoenix("lab", "up").stdout.strip().endswith("nothing to change")


def test_down_then_up(lab: Lab) -> None:
    down = lab.phoenix("lab", "down")
    assert down.rc == 0, down.stderr
    assert not LXD().running()
    assert lab.phoenix("lab", "up").rc == 0
    assert LXD().running()


def test_server_from_base_image_accepts_operator_key_with_pinned_host_key(
    lab: Lab, server_names: list[str]
) -> None:
    name = unique("t-ssh")
    server_names.append(name)
    cfg = lab.workspace.config.lab
    target = labmod.launch_server(lab.lxd, name, cfg.base_image, lab.key)
    assert target.address.startswith(str(cfg.subnet.network.network_address)[:-1])
    with ssh.connect(target, lab.key.private_path) as session:
        result = session.run("id", "-u")
    assert result.rc == 0 and result.stdout.strip() == "0"

    impostor = labmod.launch_server(lab.lxd, unique("t-imp"), cfg.base_image, lab.key)
    server_names.append(impostor.name)
    forged = ssh.Target(name=name, address=target.address, host_key=impostor.host_key)
    with pytest.raises(HostKeyError):
        ssh.connect(forged, lab.key.private_path)


def test_servers_from_base_image_are_not_twins(lab: Lab, server_names: list[str]) -> None:
    cfg = lab.workspace.config.lab
    seen = []
    for _ in range(2):
        name = unique("t-twin")
        server_names.append(name)
        target = labmod.launch_server(lab.lxd, name, cfg.base_image, lab.key)
        with ssh.connect(target, lab.key.private_path) as session:
            machine_id = session.run("cat", "/etc/machine-id").stdout.strip()
            hostname = session.run("hostname").stdout.strip()
        assert hostname == name
        assert len(machine_id) == 32
        seen.append((target.host_key, machine_id, hostname))
    (key_a, id_a, host_a), (key_b, id_b, host_b) = seen
    assert key_a != key_b
    assert id_a != id_b
    assert host_a != host_b


def test_doctor_passes_on_a_lab_that_is_up(lab: Lab) -> None:
    subprocess.run(["sh", "-c", "pgrep -x cron >/dev/null || cron"], check=True)
    doctor = lab.phoenix("doctor", "--json")
    failing = [c for c in doctor.json() if not c["ok"]]  # type: ignore[union-attr]
    assert doctor.rc == 0, failing

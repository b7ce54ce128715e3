"""Offline AWS: botocore clients with dummy keys (no credential lookup reaches the network),
answered only by botocore's Stubber with responses shaped as AWS records them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

botocore = pytest.importorskip("botocore", reason="botocore (the dev extra) is not installed")

from botocore.stub import Stubber  # noqa: E402

REGION = "eu-west-1"
ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef"
LB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy keys from the environment, no config files, no instance metadata service."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def client(service: str) -> Any:
    from phoenix.fleet.aws.client import make_client

    return make_client(service, REGION)


@pytest.fixture
def ec2_stub() -> Iterator[tuple[Any, Stubber]]:
    c = client("ec2")
    with Stubber(c) as stub:
        yield c, stub
        stub.assert_no_pending_responses()


@pytest.fixture
def elb_stub() -> Iterator[tuple[Any, Stubber]]:
    c = client("elbv2")
    with Stubber(c) as stub:
        yield c, stub
        stub.assert_no_pending_responses()


def reservation(
    name: str,
    instance_id: str,
    state: str = "running",
    ip: str | None = "10.0.1.23",
    fleet: str = "web",
    launched: str = "2024-05-02T10:00:00Z",
) -> dict[str, Any]:
    """One instance of describe_instances, as EC2 answers it (trimmed to what matters)."""
    from datetime import datetime

    instance: dict[str, Any] = {
        "InstanceId": instance_id,
        "ImageId": "ami-0a1b2c3d4e5f60718",
        "InstanceType": "t3.micro",
        "LaunchTime": datetime.fromisoformat(launched.replace("Z", "+00:00")),
        "State": {"Code": 16 if state == "running" else 0, "Name": state},
        "SubnetId": "subnet-0a1b2c3d",
        "VpcId": "vpc-0a1b2c3d",
        "Tags": [
            {"Key": "Name", "Value": name},
            {"Key": "phoenix:fleet", "Value": fleet},
            {"Key": "phoenix:generation", "Value": "2"},
            {"Key": "phoenix:image", "Value": "ami-0a1b2c3d4e5f60718"},
        ],
    }
    if ip:
        instance["PrivateIpAddress"] = ip
    return {"ReservationId": "r-0123456789abcdef0", "OwnerId": "123456789012",
            "Instances": [instance]}  # fmt: skip


def instances_filter(name: str | None = None, fleet: str = "web") -> dict[str, Any]:
    filters: list[dict[str, Any]] = [
        {"Name": "tag:phoenix:fleet", "Values": [fleet]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ]
    if name is not None:
        filters.append({"Name": "tag:Name", "Values": [name]})
    return {"Filters": filters}

"""The target group as the rollout's Traffic, against recorded ELBv2 answers (Stubber)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from phoenix.errors import CloudError, TrafficError
from phoenix.fleet.aws import target_group
from phoenix.fleet.aws.ec2 import Instance
from phoenix.fleet.aws.target_group import TargetGroup
from tests.unit.fleet.aws.conftest import ARN, LB_ARN, REGION

IDS = {"web-g1-1": "i-01", "web-g2-1": "i-02"}


class FakeInstances:
    def instance_id(self, name: str) -> str:
        if name not in IDS:
            raise CloudError(f"fleet web has no live EC2 instance named {name} in {REGION}")
        return IDS[name]

    def named(self, ids: Sequence[str]) -> dict[str, Instance]:
        names = {v: k for k, v in IDS.items()}
        return {i: Instance(i, names[i], "running", f"10.0.1.{i[-1]}") for i in ids if i in names}


def group(client: Any, **kwargs: Any) -> TargetGroup:
    return TargetGroup("web", ARN, 80, FakeInstances(), REGION, client=client, interval=0.01,
                       **kwargs)  # fmt: skip


def health(instance_id: str, state: str, reason: str = "", description: str = "") -> dict[str, Any]:
    described: dict[str, Any] = {
        "Target": {"Id": instance_id, "Port": 80},
        "HealthCheckPort": "80",
        "TargetHealth": {"State": state},
    }
    if reason:
        described["TargetHealth"].update(Reason=reason, Description=description)
    return described


def one(instance_id: str) -> dict[str, Any]:
    return {"TargetGroupArn": ARN, "Targets": [{"Id": instance_id, "Port": 80}]}


def test_add_registers_and_wait_up_polls_until_healthy(elb_stub: Any) -> None:
    client, stub = elb_stub
    stub.add_response("register_targets", {}, one("i-02"))
    initial = health(
        "i-02", "initial", "Elb.RegistrationInProgress", "Target registration is in progress"
    )
    stub.add_response(
        "describe_target_health", {"TargetHealthDescriptions": [initial]}, one("i-02")
    )
    stub.add_response(
        "describe_target_health",
        {"TargetHealthDescriptions": [health("i-02", "healthy")]},
        one("i-02"),
    )
    tg = group(client)
    tg.add("web-g2-1", "10.0.1.2")
    tg.wait_up("web-g2-1", timeout=5)


def test_a_target_that_never_turns_healthy_names_the_target_group(elb_stub: Any) -> None:
    client, stub = elb_stub
    failing = health("i-02", "unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    for _ in range(200):
        stub.add_response("describe_target_health", {"TargetHealthDescriptions": [failing]})
    with pytest.raises(TrafficError) as caught:
        group(client).wait_up("web-g2-1", timeout=0.1)
    assert caught.value.message == (
        "web-g2-1 (i-02) did not turn healthy in target group web of fleet web within 0.1 s:"
        " unhealthy (Target.FailedHealthChecks, Health checks failed)"
    )
    assert "security group" in str(caught.value.hint)
    stub._queue.clear()


def test_drain_deregisters_and_wait_drained_waits_out_the_deregistration_delay(
    elb_stub: Any,
) -> None:
    client, stub = elb_stub
    stub.add_response("deregister_targets", {}, one("i-01"))
    attributes = {"Attributes": [
        {"Key": "stickiness.enabled", "Value": "false"},
        {"Key": "deregistration_delay.timeout_seconds", "Value": "5"},
    ]}  # fmt: skip
    stub.add_response("describe_target_group_attributes", attributes, {"TargetGroupArn": ARN})
    draining = health(
        "i-01",
        "draining",
        "Target.DeregistrationInProgress",
        "Target deregistration is in progress",
    )
    stub.add_response(
        "describe_target_health", {"TargetHealthDescriptions": [draining]}, one("i-01")
    )
    stub.add_response(
        "describe_target_health",
        {
            "TargetHealthDescriptions": [
                health(
                    "i-01",
                    "unused",
                    "Target.NotRegistered",
                    "Target is not registered to the target group",
                )
            ]
        },
        one("i-01"),
    )
    tg = group(client)
    tg.drain("web-g1-1")
    # the rollout's 0.01 s would give up at once: the group's 5 s delay is the deadline
    assert tg.wait_drained("web-g1-1", timeout=0.01) is True


def test_a_target_still_draining_at_the_deadline_is_false(
    elb_stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stub = elb_stub
    monkeypatch.setattr(target_group, "DRAIN_MARGIN", 0.0)
    attributes = {"Attributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}]}
    stub.add_response("describe_target_group_attributes", attributes)
    draining = health("i-01", "draining")
    for _ in range(200):
        stub.add_response("describe_target_health", {"TargetHealthDescriptions": [draining]})
    assert group(client).wait_drained("web-g1-1", timeout=0.05) is False
    stub._queue.clear()  # the polls the deadline left unasked


def test_remove_of_a_target_no_longer_registered_is_nothing(elb_stub: Any) -> None:
    client, stub = elb_stub
    stub.add_client_error("deregister_targets", "InvalidTarget",
                          "The following targets are not registered: i-01")  # fmt: skip
    tg = group(client)
    tg.remove("web-g1-1")
    tg.remove("web-g9-9")  # no instance: nothing asked


def test_servers_map_target_health_to_backends_of_this_fleet(elb_stub: Any) -> None:
    client, stub = elb_stub
    described = [health("i-01", "healthy"), health("i-02", "initial", "Elb.RegistrationInProgress"),
                 health("i-0foreign", "healthy")]  # fmt: skip
    stub.add_response("describe_target_health", {"TargetHealthDescriptions": described},
                      {"TargetGroupArn": ARN})  # fmt: skip
    servers = group(client).servers()
    assert [(b.name, b.address, b.healthy, b.check_status) for b in servers] == [
        ("web-g1-1", "10.0.1.1", True, "healthy"),
        ("web-g2-1", "10.0.1.2", False, "Elb.RegistrationInProgress"),
    ]
    assert group(client).counters() == {}


def test_endpoint_is_the_load_balancers_dns_name(elb_stub: Any) -> None:
    client, stub = elb_stub
    target_group = {"TargetGroupArn": ARN, "TargetGroupName": "web", "Protocol": "HTTP",
                    "Port": 80, "VpcId": "vpc-0a1b2c3d", "TargetType": "instance",
                    "LoadBalancerArns": [LB_ARN]}  # fmt: skip
    stub.add_response("describe_target_groups", {"TargetGroups": [target_group]},
                      {"TargetGroupArns": [ARN]})  # fmt: skip
    balancer = {
        "LoadBalancerArn": LB_ARN,
        "LoadBalancerName": "web",
        "Scheme": "internet-facing",
        "DNSName": "web-1234567890.eu-west-1.elb.amazonaws.com",
        "Type": "application",
    }
    stub.add_response("describe_load_balancers", {"LoadBalancers": [balancer]},
                      {"LoadBalancerArns": [LB_ARN]})  # fmt: skip
    tg = group(client)
    assert tg.endpoint == "web-1234567890.eu-west-1.elb.amazonaws.com"
    assert tg.endpoint == "web-1234567890.eu-west-1.elb.amazonaws.com"  # asked once
    assert group(client, dns_name="web.example.com").endpoint == "web.example.com"


def test_a_missing_target_group_is_refused_before_the_rollout_changes_anything(
    elb_stub: Any,
) -> None:
    client, stub = elb_stub
    stub.add_client_error("describe_target_groups", "TargetGroupNotFound",
                          "One or more target groups not found", http_status_code=400)  # fmt: skip
    with pytest.raises(TrafficError, match="AWS refused to read target group web:"
                       " TargetGroupNotFound: One or more target groups not found"):  # fmt: skip
        group(client).ensure_running([])


def test_throttled_registration_is_one_line(elb_stub: Any) -> None:
    client, stub = elb_stub
    stub.add_client_error("register_targets", "Throttling", "Rate exceeded",
                          http_status_code=400)  # fmt: skip
    with pytest.raises(TrafficError) as caught:
        group(client).add("web-g2-1", "10.0.1.2")
    assert str(caught.value).count("\n") == 0
    assert caught.value.message == (
        "AWS refused to register web-g2-1 (i-02) in target group web: Throttling: Rate exceeded"
    )
    assert "throttling" in str(caught.value.hint)

"""EC2 as the Provider, against recorded EC2 answers (botocore's Stubber): host keys from the
console (hostile input), instances by fleet tag, and AWS's errors as one line."""

from __future__ import annotations

import base64
import struct
from datetime import UTC
from typing import Any

import pytest

from phoenix.errors import CloudError, OutputTooLarge, UntrustedOutput
from phoenix.fleet.aws import console
from phoenix.fleet.aws.ec2 import EC2
from tests.unit.fleet.aws.conftest import REGION, instances_filter, reservation


def _blob(key_type: str, body: bytes) -> str:
    raw = struct.pack(">I", len(key_type)) + key_type.encode() + struct.pack(">I", len(body)) + body
    return base64.b64encode(raw).decode()


ED25519 = _blob("ssh-ed25519", bytes(range(32)))
ECDSA = _blob("ecdsa-sha2-nistp256", b"\x00\x00\x00\x08nistp256" + bytes(69))
BOOT = (
    "[    0.000000] Linux version 6.1.0-21-cloud-amd64 (debian-kernel@lists.debian.org)\r\n"
    "[   12.412907] cloud-init[512]: Cloud-init v. 22.4.2 running 'modules:config'\r\n"
)
BLOCK = (
    f"{console.BEGIN}\r\n"
    f"ecdsa-sha2-nistp256 {ECDSA} root@ip-10-0-1-23\r\n"
    f"ssh-ed25519 {ED25519} root@ip-10-0-1-23\r\n"
    f"{console.END}\r\n"
)


def console_answer(text: str) -> dict[str, Any]:
    """get_console_output as EC2 sends it: the output base64-encoded (botocore decodes it)."""
    from datetime import datetime

    return {
        "InstanceId": "i-0abc1234def567890",
        "Timestamp": datetime(2024, 5, 2, 10, 1, tzinfo=UTC),
        "Output": base64.b64encode(text.encode()).decode(),
    }


def find(stub: Any, name: str, *found: dict[str, Any]) -> None:
    stub.add_response("describe_instances", {"Reservations": list(found)}, instances_filter(name))


def test_host_key_waits_for_cloud_inits_block_and_prefers_ed25519(ec2_stub: Any) -> None:
    client, stub = ec2_stub
    find(stub, "web-g2-1", reservation("web-g2-1", "i-0abc1234def567890"))
    params = {"InstanceId": "i-0abc1234def567890", "Latest": True}
    stub.add_response("get_console_output", console_answer(BOOT), params)
    stub.add_response("get_console_output", console_answer(BOOT + BLOCK[:60]), params)
    stub.add_response("get_console_output", console_answer(BOOT + BLOCK), params)
    ec2 = EC2("web", REGION, client=client, interval=0.01)
    assert ec2.host_key("web-g2-1", timeout=5) == f"ssh-ed25519 {ED25519}"


def test_no_host_keys_on_the_console_until_the_deadline(ec2_stub: Any) -> None:
    client, stub = ec2_stub
    find(stub, "web-g2-1", reservation("web-g2-1", "i-0abc1234def567890"))
    for _ in range(200):
        stub.add_response("get_console_output", console_answer(BOOT))
    ec2 = EC2("web", REGION, client=client, interval=0.01)
    with pytest.raises(CloudError, match=r"web-g2-1 \(i-0abc1234def567890\) printed no SSH host"
                       r" keys on its console within 0.1 s") as caught:  # fmt: skip
        ec2.host_key("web-g2-1", timeout=0.1)
    assert "cloud-init" in str(caught.value.hint)
    stub._queue.clear()  # the polls the deadline left unasked


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (BOOT + BLOCK + BLOCK, "more than one block"),
        (BLOCK.replace("ssh-ed25519 ", "ssh-ed25519 $(reboot) "), "not a key"),
        (BLOCK.replace(ED25519, ECDSA), "names another type"),
        (BLOCK.replace(ED25519, _blob("ssh-ed25519", bytes(31))), "not 32 bytes"),
        (BLOCK.replace(ED25519, "A" * 67 + "!"), "not a key"),
        (f"{console.BEGIN}\nssh-rsa {_blob('ssh-rsa', bytes(10))}\n{console.END}\n", "no host key"),
    ],
)
def test_a_forged_console_is_untrusted(ec2_stub: Any, text: str, why: str) -> None:
    client, stub = ec2_stub
    find(stub, "web-g2-1", reservation("web-g2-1", "i-0abc1234def567890"))
    stub.add_response("get_console_output", console_answer(text))
    ec2 = EC2("web", REGION, client=client, interval=0.01)
    with pytest.raises(UntrustedOutput, match=why):
        ec2.host_key("web-g2-1", timeout=5)


def test_an_oversized_console_is_refused_at_once(ec2_stub: Any) -> None:
    client, stub = ec2_stub
    find(stub, "web-g2-1", reservation("web-g2-1", "i-0abc1234def567890"))
    stub.add_response("get_console_output", console_answer("x" * (console.MAX_CONSOLE + 1)))
    ec2 = EC2("web", REGION, client=client, interval=0.01)
    with pytest.raises(OutputTooLarge, match="more than the 131072 phoenix reads"):
        ec2.host_key("web-g2-1", timeout=5)


def test_throttling_is_one_line_saying_what_failed_and_what_to_do(ec2_stub: Any) -> None:
    client, stub = ec2_stub
    stub.add_client_error(  # the Stubber answers before botocore's retries would run
        "describe_instances",
        service_error_code="RequestLimitExceeded",
        service_message="Request limit exceeded.\nSecond line",
        http_status_code=503,
    )
    ec2 = EC2("web", REGION, client=client, interval=0.01)
    with pytest.raises(CloudError) as caught:
        ec2.fleet_instances("web")
    text = str(caught.value)
    assert "\n" not in text
    assert caught.value.message == (
        "AWS refused to list the EC2 instances of fleet web: RequestLimitExceeded:"
        " Request limit exceeded."
    )
    assert "throttling" in str(caught.value.hint)


def test_access_denied_names_the_permission(ec2_stub: Any) -> None:
    client, stub = ec2_stub
    stub.add_client_error("describe_instances", "UnauthorizedOperation", "You are not authorized")
    with pytest.raises(CloudError, match="ec2:DescribeInstances"):
        EC2("web", REGION, client=client).fleet_instances("web")


def test_fleet_instances_reads_every_page_by_name(ec2_stub: Any) -> None:
    client, stub = ec2_stub
    first = {"Reservations": [reservation("web-g1-1", "i-01")], "NextToken": "t1"}
    stub.add_response("describe_instances", first, instances_filter())
    second = {"Reservations": [reservation("web-g2-1", "i-02", state="pending", ip=None)]}
    stub.add_response("describe_instances", second, {**instances_filter(), "NextToken": "t1"})
    assert EC2("web", REGION, client=client).fleet_instances("web") == ["web-g1-1", "web-g2-1"]


def test_wait_address_polls_until_the_instance_has_one(ec2_stub: Any) -> None:
    client, stub = ec2_stub
    find(stub, "web-g2-1", reservation("web-g2-1", "i-02", state="pending", ip=None))
    find(stub, "web-g2-1", reservation("web-g2-1", "i-02", ip="10.0.1.40"))
    assert EC2("web", REGION, client=client, interval=0.01).wait_address("web-g2-1", 5) == (
        "10.0.1.40"
    )


def test_delete_terminates_the_named_instances_and_a_gone_one_is_nothing(ec2_stub: Any) -> None:
    client, stub = ec2_stub
    find(stub, "web-g1-1", reservation("web-g1-1", "i-01"))
    stub.add_response(
        "terminate_instances",
        {"TerminatingInstances": [{"InstanceId": "i-01", "CurrentState": {"Code": 32,
         "Name": "shutting-down"}, "PreviousState": {"Code": 16, "Name": "running"}}]},
        {"InstanceIds": ["i-01"]},
    )  # fmt: skip
    find(stub, "web-g1-9")
    ec2 = EC2("web", REGION, client=client)
    ec2.delete("web-g1-1")
    ec2.delete("web-g1-9")


def test_an_instance_that_is_not_there_is_an_error_naming_the_fix(ec2_stub: Any) -> None:
    client, stub = ec2_stub
    find(stub, "web-g9-1")
    with pytest.raises(CloudError, match="fleet web has no live EC2 instance named web-g9-1"):
        EC2("web", REGION, client=client).instance_id("web-g9-1")

"""The ports fact: `ss -H -tulnp`, recorded and hand-made."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from phoenix.facts import ports
from phoenix.facts.ports import Listener
from tests.unit.facts.fakes import cases, expected, output


@pytest.mark.parametrize("case", cases("ports"))
def test_recorded_output(case: str) -> None:
    want = expected(f"ports/{case}.json")["ports"]
    found = ports.parse(output(f"ports/{case}.out"))
    assert {key: asdict(listener) for key, listener in found.items()} == want


HAND_MADE: list[tuple[str, str, dict[str, Listener]]] = [
    ("nothing", "", {}),
    (
        "IPv6 any, dual-stack any, a process with several users, no process, a scope",
        'tcp LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=91,fd=4))\n'
        'tcp LISTEN 0 511 *:80 *:* users:(("nginx",pid=702,fd=6),("master",pid=701,fd=6))\n'
        "tcp LISTEN 0 4096 0.0.0.0:2024 0.0.0.0:*\n"
        'udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=301,fd=13))\n'
        'udp UNCONN 0 0 [fe80::1]%eth0:546 [::]:* users:(("dhclient",pid=5,fd=6))   \n',
        {
            "tcp/[::]:22": Listener("tcp", "::", 22, "sshd"),
            "tcp/*:80": Listener("tcp", "*", 80, "nginx"),
            "tcp/0.0.0.0:2024": Listener("tcp", "0.0.0.0", 2024, None),
            "udp/127.0.0.53%lo:53": Listener("udp", "127.0.0.53%lo", 53, "systemd-resolve"),
            "udp/[fe80::1%eth0]:546": Listener("udp", "fe80::1%eth0", 546, "dhclient"),
        },
    ),
    (
        "older ss: IPv6 without brackets reads as the bracketed form",
        'tcp LISTEN 0 128 :::22 :::* users:(("sshd",pid=1,fd=4))\ntcp LISTEN 0 128 ::1:631 :::*\n',
        {
            "tcp/[::]:22": Listener("tcp", "::", 22, "sshd"),
            "tcp/[::1]:631": Listener("tcp", "::1", 631, None),
        },
    ),
    (
        "a process name with spaces, quotes and commas; an IPv4-mapped address",
        'tcp LISTEN 0 5 [::ffff:127.0.0.1]:8080 *:* users:(("my, "odd" app",pid=3,fd=3))\n',
        {"tcp/[::ffff:127.0.0.1]:8080": Listener("tcp", "::ffff:127.0.0.1", 8080, 'my, "odd" app')},
    ),
    (
        "SO_REUSEPORT: one listener, the least process name, a named one before none",
        'tcp LISTEN 0 5 0.0.0.0:443 0.0.0.0:* users:(("worker",pid=9,fd=3))\n'
        "tcp LISTEN 0 5 0.0.0.0:443 0.0.0.0:*\n"
        'tcp LISTEN 0 5 0.0.0.0:443 0.0.0.0:* users:(("haproxy",pid=8,fd=3))\n',
        {"tcp/0.0.0.0:443": Listener("tcp", "0.0.0.0", 443, "haproxy")},
    ),
    (
        "a port ss shows as a star",
        "udp UNCONN 0 0 0.0.0.0:* 0.0.0.0:*\n",
        {"udp/0.0.0.0:0": Listener("udp", "0.0.0.0", 0, None)},
    ),
]


@pytest.mark.parametrize(
    ("text", "want"), [c[1:] for c in HAND_MADE], ids=[c[0] for c in HAND_MADE]
)
def test_hand_made_output(text: str, want: dict[str, Listener]) -> None:
    assert ports.parse(text) == want


def test_the_key_brackets_ipv6_only() -> None:
    assert Listener("tcp", "::", 22, None).key == "tcp/[::]:22"
    assert Listener("udp", "10.0.0.1", 53, None).key == "udp/10.0.0.1:53"
    assert Listener("tcp", "*", 80, None).key == "tcp/*:80"


@pytest.mark.parametrize(
    "text",
    [
        "Netid State Recv-Q Send-Q Local Address:Port\n",
        "tcp LISTEN 0 128 0.0.0.0 0.0.0.0:*\n",
        "tcp LISTEN 0 128 0.0.0.0:ssh 0.0.0.0:*\n",
        "tcp LISTEN 0 128 [::1:22 [::]:*\n",
        "tcp LISTEN 0 128 :22 0.0.0.0:*\n",
    ],
)
def test_malformed_output_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        ports.parse(text)

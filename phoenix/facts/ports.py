"""Listening sockets: every TCP port listened on and every UDP port bound, with its process.

Sample output of the command (iproute2's `ss`: protocol, state, queues, local address, peer
address, the processes that hold the socket):

    udp UNCONN 0 0 0.0.0.0:68 0.0.0.0:* users:(("dhclient",pid=59,fd=7))
    udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=301,fd=13))
    tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=91,fd=3))
    tcp LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=91,fd=4))
    tcp LISTEN 0 511 *:80 *:* users:(("nginx",pid=702,fd=6),("nginx",pid=701,fd=6))
    tcp LISTEN 0 4096 [fe80::1]%eth0:8080 [::]:*

Each listener is keyed `PROTO/ADDRESS:PORT`, with an IPv6 address in brackets as ss prints it:
`tcp/0.0.0.0:22`, `tcp/[::]:22`, `tcp/*:80`, `tcp/[fe80::1%eth0]:8080`. Its `address` has no
brackets: `0.0.0.0` is every IPv4 address, `::` every IPv6 one, and `*` both (an IPv6 socket that
takes IPv4 too; ss before 4.17 also printed `*` for `0.0.0.0`, and `:::22` for `[::]:22`, which
reads as `::`). A scope (`%lo`) stays part of the address. Its `process` is the name of the first
process ss lists, or None when ss shows none (a socket of the kernel, or one ss may not look into).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from phoenix.facts import fields

COMMAND = "ss -H -tulnp"
# columns are separated by spaces only: fields.plain() refuses every other control character
LINE = re.compile(r"([^ ]+) +[^ ]+ +[^ ]+ +[^ ]+ +([^ ]+) +[^ ]+ *(.*)")
PROTOCOLS = ("tcp", "udp")
MAX_PORT = 65535
PROCESS = re.compile(r'users:\(\("(.*?)",pid=\d')


@dataclass(frozen=True)
class Listener:
    proto: str  # tcp, udp
    address: str  # 0.0.0.0, ::, *, 127.0.0.1, ::1, 127.0.0.53%lo, fe80::1%eth0, ...
    port: int  # 0 when ss prints "*"
    process: str | None

    @property
    def key(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.proto}/{host}:{self.port}"


def parse(text: str) -> dict[str, Listener]:
    """Parse `ss -H -tulnp`; raise ValueError on a line that is not a socket line (see `fields`:
    no control characters, a known protocol, a port number, a process name that is plain text).

    Sockets on the same address (SO_REUSEPORT) are one listener: its process is the least name.
    """
    found: dict[str, Listener] = {}
    for line in fields.records(text, "\n"):
        if not line.strip(" "):
            continue
        listener = _listener(fields.plain(line, "socket line"))
        seen = found.get(listener.key)
        if seen is None or _order(listener) < _order(seen):
            found[listener.key] = listener
    return dict(sorted(found.items()))


def normalize(address: str) -> str:
    """ss's form of a local address (without its port) as a listener's `address`."""
    if address.startswith("["):
        inside, sep, scope = address[1:].partition("]")
        if not sep:
            raise ValueError(f"unbalanced brackets in {fields.shown(address)}")
        return inside + scope
    return address


def _listener(line: str) -> Listener:
    match = LINE.fullmatch(line.strip(" "))
    if match is None:
        raise ValueError(f"not a socket line: {fields.shown(line)}")
    proto, local, users = match.groups()
    if proto not in PROTOCOLS:
        raise ValueError(f"protocol {fields.shown(proto)} is not one of {', '.join(PROTOCOLS)}")
    address, sep, port = local.rpartition(":")
    if not sep or not address or not (port == "*" or fields.DIGITS.fullmatch(port)):
        raise ValueError(f"not an address and port: {fields.shown(local)}")
    number = int(port) if port != "*" else 0
    if number > MAX_PORT:
        raise ValueError(f"port {fields.shown(port)} is above {MAX_PORT}")
    process = PROCESS.match(users)
    return Listener(
        proto=proto,
        address=normalize(address),
        port=number,
        process=fields.plain(process.group(1), "process name", 64) if process else None,
    )


def _order(listener: Listener) -> tuple[bool, str]:
    return listener.process is None, listener.process or ""

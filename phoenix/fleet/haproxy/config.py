"""The HAProxy configuration of one fleet: its text, and the names and paths safe to write in it."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path

from phoenix.config import HealthCheck
from phoenix.errors import TrafficError

# Every server, in the configuration and at runtime, gets the same check settings: a runtime
# `add server` does not inherit `default-server`. Checked every 500 ms, UP after one passing check,
# DOWN after two failing ones.
CHECK_OPTIONS = "check inter 500 rise 1 fall 2"


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


# A path (of a URL, of a file) safe to write unquoted into the configuration: printable ASCII
# without space, quotes, backslash, '$' or '#' (which starts a comment).
PATH_PATTERN = re.compile(r"/[!%&(-\[\]-~]*")


def config_text(
    fleet: str,
    socket_path: Path,
    pid_file: Path,
    listen: str,
    listen_port: int,
    server_port: int,
    health: HealthCheck,
    servers: Sequence[tuple[str, str]],
) -> str:
    """The whole HAProxy configuration of a fleet.

    One frontend on LISTEN:PORT, one backend named after the fleet. The admin socket (mode 0600,
    level admin) is how phoenix changes the backend afterwards; `servers` are the (name, address)
    pairs written in statically, every one with the checks that runtime-added servers get.

    Health checks: "http" is `option httpchk GET PATH` expecting a 2xx or 3xx; "tcp" is a plain
    connect; "command" (which runs over SSH, something HAProxy cannot do) falls back to a connect
    to the server's own port. An http or tcp check on another port than the served one says so.
    """
    check = check_options(health, server_port)
    lines = [
        "# Written by phoenix; changed at runtime through the admin socket, never reloaded.",
        "global",
        f"    stats socket {socket_path} mode 600 level admin",
        f"    pidfile {pid_file}",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        # A request that meets a server as it goes away is tried again, on another server every
        # time (`redispatch 1`; by default only the last of the retries changes server, after
        # a 1 s pause before each retry on the same one).
        "    retries 3",
        "    option redispatch 1",
        # What is retried (HAProxy 2.6 configuration.txt, "retry-on"): conn-failure = the
        # connection failed, the request was never sent: always safe. empty-response = the
        # server closed after receiving (part of) the request without answering; response-
        # timeout = it did not answer within `timeout server`. In those two the server may have
        # processed the request, so they are only safe for requests that can be replayed: the
        # backend turns them off for every method but GET, HEAD and OPTIONS
        # (`disable-l7-retry`), which then get conn-failure retries only. Requests larger than
        # one buffer (tune.bufsize, 16 kB) are never replayed. 500, 502, 503 and 504 answers to
        # those are replayed too, on another server: a bad server's errors (a canary's) reach no
        # client that another server can answer. HAProxy then counts them as the server's
        # retries (`wretr`), not as its 5xx responses: phoenix.fleet.canary counts both.
        "    retry-on conn-failure empty-response response-timeout 500 502 503 504",
        "",
        f"frontend {fleet}-in",
        f"    bind {listen}:{listen_port}",
        f"    default_backend {fleet}",
        "",
        f"backend {fleet}",
        "    balance roundrobin",
    ]
    if health.type == "http":
        lines += [f"    option httpchk GET {health.path}", "    http-check expect status 200-399"]
    lines.append("    http-request disable-l7-retry unless METH_GET || METH_OPTIONS")
    lines += [f"    server {name} {address}:{server_port} {check}" for name, address in servers]
    return "\n".join(lines) + "\n"


def check_options(health: HealthCheck, server_port: int) -> str:
    """The `server` keywords of every server's health check, static or added at runtime."""
    if health.type != "command" and health.port != server_port:
        return f"{CHECK_OPTIONS} port {health.port}"
    return CHECK_OPTIONS


def check_identifier(what: str, name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise TrafficError(
            f"{what} name {name!r} is not a valid HAProxy identifier",
            hint="use letters, digits, '-', '_' and '.'",
        )


def check_ipv4(what: str, address: str) -> None:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise TrafficError(f"{what} {address!r} is not an IPv4 address") from None

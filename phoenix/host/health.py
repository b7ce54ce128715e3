"""Health checks with deadlines: HTTP, TCP, or a command run on the server over SSH."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable

from phoenix.config import HealthCheck
from phoenix.errors import HealthError
from phoenix.host.process import CommandResult
from phoenix.poll import ticks

RunCommand = Callable[[str], CommandResult]


def probe(address: str, check: HealthCheck, run: RunCommand | None = None) -> str | None:
    """One try: None when healthy, else why not."""
    try:
        if check.type == "http":
            return _http(address, check)
        if check.type == "tcp":
            with socket.create_connection((address, check.port), timeout=check.interval + 1):
                return None
        if run is None or check.command is None:
            return "a command check needs an SSH session"
        result = run(check.command)
        return None if result.ok else f"`{check.command}` exited {result.rc}"
    except OSError as exc:
        return str(exc) or type(exc).__name__


def wait_healthy(
    name: str, address: str, check: HealthCheck, run: RunCommand | None = None
) -> float:
    """Probe until healthy; return the seconds it took, or raise HealthError at the deadline."""
    started = time.monotonic()
    for _ in ticks(check.timeout, check.interval):
        why = probe(address, check, run)
        if why is None:
            return time.monotonic() - started
    raise HealthError(
        f"{name} ({address}) was not healthy within {check.timeout:.0f} s: {why}",
        hint=f"the {check.type} check on port {check.port} kept failing",
    )


def _http(address: str, check: HealthCheck) -> str | None:
    conn = http.client.HTTPConnection(address, check.port, timeout=check.interval + 1)
    try:
        conn.request("GET", check.path, headers={"User-Agent": "phoenix-health"})
        status = conn.getresponse().status
    finally:
        conn.close()
    return None if 200 <= status < 400 else f"HTTP {status} from {check.path}"

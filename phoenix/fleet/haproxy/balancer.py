"""The lab's load balancer: one HAProxy process per fleet, changed only through its runtime API.

phoenix never reloads HAProxy: servers are added, drained and deleted over the admin socket
(`stats socket ... level admin`), one command per connection. What HAProxy 2.6 was seen to do, and
what this module relies on:

- `add server B/N ADDR:PORT ...` answers "New server registered."; the new server starts in
  maintenance, with its health check disabled until `enable health`.
- `enable server` marks a server UP at once, before any check has run (it then goes DOWN after the
  first failed check). So a new server is added with `weight 0`: it is checked, but gets no
  traffic until `wait_up` has seen a check pass and gives it its weight.
- `del server` answers "Server deleted.", refuses a server that is not in maintenance ("Only servers
  in maintenance mode can be deleted.") and one that still has connections ("Server still has
  connections attached to it, cannot remove it."): `remove` retries the latter until a deadline.
- Actions that succeed answer nothing (an empty line); everything else is an error message.
- Servers added at runtime do not survive a restart of HAProxy: `ensure_running` writes the servers
  it is given (those phoenix's state says are serving) into the configuration.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

from phoenix.atomic import write_atomic
from phoenix.config import HealthCheck
from phoenix.errors import CommandError, TrafficError
from phoenix.fleet.haproxy.config import (
    PATH_PATTERN,
    check_identifier,
    check_ipv4,
    check_options,
    config_text,
)
from phoenix.fleet.haproxy.runtime import (
    CHECK_CONDPASS,
    CHECK_PASSED,
    SERVING_WEIGHT,
    STILL_CONNECTED,
    Backend,
    Counters,
    backends,
    counters,
    parse_servers_state,
    parse_stat,
    reply_error,
)
from phoenix.host import process
from phoenix.poll import poll, ticks

START_TIMEOUT = 10.0  # from `haproxy -D` to the admin socket answering
SOFT_STOP_TIMEOUT = 10.0  # SIGUSR1: finish the requests in flight, then exit
HARD_STOP_TIMEOUT = 5.0  # SIGTERM, then SIGKILL
# `del server` is retried while requests run: a little more than `timeout server` (30 s).
DELETE_TIMEOUT = 35.0
SOCKET_TIMEOUT = 5.0
POLL = 0.05
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with its terminating NUL


class HAProxy:
    """The HAProxy process in front of one fleet, with its files in HOME/haproxy/."""

    def __init__(
        self,
        fleet: str,
        home: Path,
        listen: str,
        listen_port: int,
        server_port: int,
        health: HealthCheck,
    ) -> None:
        check_identifier("fleet", fleet)
        check_ipv4("listen address", listen)
        if health.type == "http" and not PATH_PATTERN.fullmatch(health.path):
            raise TrafficError(
                f"health check path {health.path!r} cannot go into an HAProxy configuration",
                hint="use printable characters without spaces, quotes, backslashes or '#'",
            )
        self.fleet = fleet
        self.backend = fleet
        self.listen = listen
        self.listen_port = listen_port
        self.server_port = server_port
        self.health = health
        self.directory = home.absolute() / "haproxy"  # absolute: it identifies our processes
        self.config_file = self.directory / f"{fleet}.cfg"
        self.socket_path = self.directory / f"{fleet}.sock"
        self.pid_file = self.directory / f"{fleet}.pid"
        if not PATH_PATTERN.fullmatch(str(self.directory)):
            raise TrafficError(
                f"{self.directory} cannot go into an HAProxy configuration",
                hint="use a PHOENIX_HOME without spaces, quotes, backslashes, '$' or '#'",
            )
        if len(str(self.socket_path)) > UNIX_PATH_MAX:
            raise TrafficError(
                f"the admin socket path {self.socket_path} is longer than {UNIX_PATH_MAX} bytes",
                hint="use a shorter PHOENIX_HOME",
            )

    @property
    def endpoint(self) -> str:
        """Where clients of the fleet connect, like "127.0.0.1:8080"."""
        return f"{self.listen}:{self.listen_port}"

    # --- the process -------------------------------------------------------------------------

    def running(self) -> bool:
        """The pid file names a live HAProxy of this fleet, and its admin socket answers."""
        pid = self._pid_from_file()
        return pid is not None and pid in self._processes() and self._answers()

    def ensure_running(self, servers: Sequence[tuple[str, str]]) -> bool:
        """Start HAProxy with `servers` in its configuration unless it runs; True if it started it.

        The configuration is checked with `haproxy -c` before it replaces the current one. A
        process of this fleet whose socket does not answer is stopped first.
        """
        if self.running():
            return False
        for name, address in servers:
            check_identifier("server", name)
            check_ipv4(f"address of {name}", address)
        names = [name for name, _ in servers]
        if len(set(names)) != len(names):
            raise TrafficError(f"fleet {self.fleet}: a server name is listed twice: {names}")
        if self._processes():
            self.stop()
        text = config_text(
            self.fleet,
            self.socket_path,
            self.pid_file,
            self.listen,
            self.listen_port,
            self.server_port,
            self.health,
            servers,
        )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.config_file, text, mode=0o600, check=self._check_config)
        # The pid file is named in the configuration; `-p` as well would make HAProxy complain.
        started = self._haproxy("-D", "-f", str(self.config_file))
        if not started.ok:
            raise TrafficError(
                f"HAProxy of fleet {self.fleet} did not start: {_alerts(started)}",
                hint=f"is something else listening on {self.endpoint}?",
            )
        if not poll(self.running, START_TIMEOUT, POLL):
            raise TrafficError(
                f"HAProxy of fleet {self.fleet} started but its socket {self.socket_path}"
                f" did not answer within {START_TIMEOUT:.0f} s"
            )
        return True

    def _check_config(self, candidate: Path) -> None:
        """Raise unless `haproxy -c` accepts the configuration in `candidate`."""
        checked = self._haproxy("-c", "-f", str(candidate))
        if not checked.ok:
            raise TrafficError(
                f"HAProxy refused the configuration of fleet {self.fleet}: {_alerts(checked)}"
            )

    def stop(self) -> None:
        """Stop this fleet's HAProxy: soft-stop (SIGUSR1), then SIGTERM, then SIGKILL at deadlines.

        A soft stop lets the requests in flight finish. The pid file and socket are removed.
        """
        for sig, timeout in (
            (signal.SIGUSR1, SOFT_STOP_TIMEOUT),
            (signal.SIGTERM, HARD_STOP_TIMEOUT),
            (signal.SIGKILL, HARD_STOP_TIMEOUT),
        ):
            pids = self._processes()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            poll(lambda: not self._processes(), timeout, POLL)
        if self._processes():
            raise TrafficError(f"HAProxy of fleet {self.fleet} did not stop")
        self.pid_file.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)

    # --- the servers -------------------------------------------------------------------------

    def servers(self) -> list[Backend]:
        """Every server of the fleet's backend, in HAProxy's order."""
        state = parse_servers_state(self._command(f"show servers state {self.backend}"))
        return backends(state, self._stat())

    def counters(self) -> dict[str, Counters]:
        """The cumulative traffic counters of every server of the fleet's backend, by name."""
        return counters(self._stat())

    def _stat(self) -> list[dict[str, str]]:
        """`show stat` of the servers of the fleet's backend (its rows only)."""
        stat = parse_stat(self._command(f"show stat {self.backend} 4 -1"))
        return [row for row in stat if row.get("pxname") == self.backend]

    def server(self, name: str) -> Backend | None:
        return next((backend for backend in self.servers() if backend.name == name), None)

    def _existing(self, name: str) -> Backend:
        current = self.server(name)
        if current is None:
            raise TrafficError(f"fleet {self.fleet} has no server {name}")
        return current

    def add(self, name: str, address: str) -> None:
        """Add a server, checked but without traffic (weight 0) until `wait_up` lets it in.

        Idempotent: a server of that name at the same address is taken out of maintenance or
        drain; at another address it is an error.
        """
        check_identifier("server", name)
        check_ipv4(f"address of {name}", address)
        target = f"{self.backend}/{name}"
        existing = self.server(name)
        if existing is None:
            self._command(
                f"add server {target} {address}:{self.server_port} {self._check()} weight 0"
            )
            self._command(f"enable health {target}")
            self._command(f"enable server {target}")
            return
        if (existing.address, existing.port) != (address, self.server_port):
            raise TrafficError(
                f"fleet {self.fleet} already has a server {name} at"
                f" {existing.address}:{existing.port}, not {address}:{self.server_port}"
            )
        if existing.in_maintenance:
            # Leaving maintenance makes it UP before any check: keep it out of rotation.
            self._command(f"set server {target} weight 0")
            self._command(f"enable health {target}")
            self._command(f"set server {target} state ready")
        elif existing.draining:
            self._command(f"set server {target} state ready")

    def wait_up(self, name: str, timeout: float) -> None:
        """Wait until the server is UP with a passing check, then give it its weight (traffic)."""
        for _ in ticks(timeout, POLL):
            current = self._existing(name)
            if current.healthy and current.check_result in (CHECK_PASSED, CHECK_CONDPASS):
                break
        else:
            raise TrafficError(
                f"{name} ({current.address}:{current.port}) did not come up behind the"
                f" load balancer of fleet {self.fleet} within {timeout:g} s:"
                f" {current.describe()}",
                hint=f"HAProxy checks it with `{self._check()}`"
                + (f" and GET {self.health.path}" if self.health.type == "http" else ""),
            )
        if current.weight != SERVING_WEIGHT:
            self._command(f"set server {self.backend}/{name} weight {SERVING_WEIGHT}")

    def drain(self, name: str) -> None:
        """No new requests to this server; those in flight finish."""
        check_identifier("server", name)
        self._command(f"set server {self.backend}/{name} state drain")

    def wait_drained(self, name: str, timeout: float) -> bool:
        """Wait until the server serves no request (scur 0, or gone); False at the deadline."""

        def drained() -> bool:
            current = self.server(name)
            return current is None or current.sessions == 0

        return bool(poll(drained, timeout, POLL))

    def remove(self, name: str, timeout: float = DELETE_TIMEOUT) -> None:
        """Put the server in maintenance and delete it; nothing to do if it is not there.

        Maintenance stops new requests but lets those in flight finish, and HAProxy refuses to
        delete a server that still has connections: `del server` is retried until `timeout`.
        A request that ends after the server went into maintenance leaves its connection idle in
        the server's pool, where HAProxy 2.6 keeps it; entering maintenance closes idle
        connections, so once no request is left the server goes through drain to maintenance
        again.
        """
        check_identifier("server", name)
        if self.server(name) is None:
            return
        target = f"{self.backend}/{name}"
        self._command(f"set server {target} state maint")
        for _ in ticks(timeout, POLL):
            reply = self._send(f"del server {target}").strip()
            if reply in ("Server deleted.", "No such server."):
                return
            if not reply.startswith(STILL_CONNECTED):
                break
            current = self.server(name)
            if current is not None and current.sessions == 0:
                self._command(f"set server {target} state drain")
                self._command(f"set server {target} state maint")
        raise TrafficError(f"HAProxy of fleet {self.fleet} refused `del server {target}`: {reply}")

    # --- plumbing ----------------------------------------------------------------------------

    def _check(self) -> str:
        return check_options(self.health, self.server_port)

    def _command(self, command: str) -> str:
        """Send one command; its reply, or TrafficError naming the command and HAProxy's words."""
        reply = self._send(command)
        refused = reply_error(command, reply)
        if refused is not None:
            raise TrafficError(
                f"HAProxy of fleet {self.fleet} refused `{command}`: {refused.splitlines()[0]}"
            )
        return reply

    def _send(self, command: str) -> str:
        if "\n" in command or ";" in command:
            raise TrafficError(f"not a single HAProxy command: {command!r}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(SOCKET_TIMEOUT)
                conn.connect(str(self.socket_path))
                conn.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise TrafficError(
                f"HAProxy of fleet {self.fleet} did not answer `{command}` on {self.socket_path}:"
                f" {exc.strerror or exc}",
                hint="`phoenix` starts it again when it next changes the fleet",
            ) from exc
        return b"".join(chunks).decode("utf-8", errors="replace")

    def _answers(self) -> bool:
        try:
            return bool(self._send("show version").strip())
        except TrafficError:
            return False

    def _pid_from_file(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _processes(self) -> list[int]:
        """Live (not zombie) HAProxy processes started with this fleet's configuration file."""
        return [pid for pid in _pids() if self._is_ours(pid)]

    def _is_ours(self, pid: int) -> bool:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        if status.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"]):
            return False
        return (
            Path(os.fsdecode(argv[0])).name == "haproxy" and os.fsencode(self.config_file) in argv
        )

    def _haproxy(self, *args: str) -> process.CommandResult:
        try:  # `-D` forks the daemon in the command's process group: it must outlive it
            return process.run(["haproxy", *args], timeout=30, check=False, daemon="-D" in args)
        except CommandError as exc:
            raise TrafficError(exc.message, hint="`make setup` installs Debian's haproxy") from exc


def _pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _alerts(result: process.CommandResult) -> str:
    """HAProxy's [ALERT] lines without their prefix, else the last lines of its output."""
    text = result.stderr or result.stdout
    alerts = [
        re.sub(r"^\[ALERT\]\s*(\(\d+\)\s*)?:\s*", "", line)
        for line in text.splitlines()
        if line.startswith("[ALERT]")
    ]
    return " / ".join(alerts or text.strip().splitlines()[-3:]) or f"exit {result.rc}"

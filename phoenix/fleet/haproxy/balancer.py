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
import ipaddress
import os
import re
import signal
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from phoenix.config import HealthCheck
from phoenix.errors import CommandError, TrafficError
from phoenix.host import process

# srv_op_state in `show servers state` (HAProxy's enum srv_state).
OP_STOPPED = 0  # down: its checks fail
OP_STARTING = 1  # up, warming up (slowstart)
OP_RUNNING = 2  # up
OP_STOPPING = 3  # up but soft-stopping (an agent or a 404 check asked for it)
OP_STATES = {OP_STOPPED: "down", OP_STARTING: "starting", OP_RUNNING: "up", OP_STOPPING: "stopping"}

# srv_admin_state in `show servers state`: a mask (HAProxy's enum srv_admin).
ADMIN_FORCED_MAINT = 0x01  # `set server ... state maint`, or a runtime-added server not yet enabled
ADMIN_INHERITED_MAINT = 0x02  # from a tracked server
ADMIN_CONFIG_MAINT = 0x04  # `disabled` in the configuration
ADMIN_FORCED_DRAIN = 0x08  # `set server ... state drain`
ADMIN_INHERITED_DRAIN = 0x10  # from a tracked server
ADMIN_RESOLVE_MAINT = 0x20  # its FQDN did not resolve
ADMIN_FQDN_SET = 0x40  # its FQDN was set from the socket (not a maintenance state)
ADMIN_MAINT = ADMIN_FORCED_MAINT | ADMIN_INHERITED_MAINT | ADMIN_CONFIG_MAINT | ADMIN_RESOLVE_MAINT
ADMIN_DRAIN = ADMIN_FORCED_DRAIN | ADMIN_INHERITED_DRAIN

# srv_check_result in `show servers state`.
CHECK_UNKNOWN = 0  # no check has completed since the server was (re)enabled
CHECK_NEUTRAL = 1
CHECK_FAILED = 2
CHECK_PASSED = 3
CHECK_CONDPASS = 4  # passed, but the server asks for no new sessions

# Every server, in the configuration and at runtime, gets the same check settings: a runtime
# `add server` does not inherit `default-server`. Checked every 500 ms, UP after one passing check,
# DOWN after two failing ones.
CHECK_OPTIONS = "check inter 500 rise 1 fall 2"
SERVING_WEIGHT = 1
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# A path (of a URL, of a file) safe to write unquoted into the configuration: printable ASCII
# without space, quotes, backslash, '$' or '#' (which starts a comment).
PATH_PATTERN = re.compile(r"/[!%&(-\[\]-~]*")

START_TIMEOUT = 10.0  # from `haproxy -D` to the admin socket answering
SOFT_STOP_TIMEOUT = 10.0  # SIGUSR1: finish the requests in flight, then exit
HARD_STOP_TIMEOUT = 5.0  # SIGTERM, then SIGKILL
# `del server` is retried while requests run: a little more than `timeout server` (30 s).
DELETE_TIMEOUT = 35.0
SOCKET_TIMEOUT = 5.0
POLL = 0.05
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with its terminating NUL

_OK_REPLIES = frozenset({"", "New server registered.", "Server deleted."})
_STILL_CONNECTED = "Server still has connections attached to it"


@dataclass(frozen=True)
class Backend:
    """One server of a fleet's backend, as HAProxy sees it now.

    `op_state` is HAProxy's operational state: 0 down (checks fail), 1 starting (slowstart),
    2 running (UP), 3 stopping (UP, soft-stopping). `admin_state` is a mask of the ADMIN_* flags
    (maintenance, drain). `sessions` is `scur` from `show stat`: requests being served now.
    `weight` is 0 for a server added but not yet let in by `wait_up`. `check_result` is one of
    the CHECK_* values; `check_status` and `check_detail` are HAProxy's words for the last check
    (like "L4CON", "Connection refused").
    """

    name: str
    address: str
    port: int
    op_state: int
    admin_state: int
    sessions: int
    weight: int = SERVING_WEIGHT
    check_result: int = CHECK_UNKNOWN
    check_status: str = ""
    check_detail: str = ""

    @property
    def in_maintenance(self) -> bool:
        return bool(self.admin_state & ADMIN_MAINT)

    @property
    def draining(self) -> bool:
        return bool(self.admin_state & ADMIN_DRAIN)

    @property
    def healthy(self) -> bool:
        """UP, and neither in maintenance nor draining."""
        return self.op_state == OP_RUNNING and not self.in_maintenance and not self.draining

    @property
    def serving(self) -> bool:
        """Healthy and given a weight: new requests go to it."""
        return self.healthy and self.weight > 0

    def describe(self) -> str:
        """Like 'down (maint), last check L4CON: Connection refused'."""
        state = OP_STATES.get(self.op_state, f"op_state {self.op_state}")
        flags = [
            word for word, on in (("maint", self.in_maintenance), ("drain", self.draining)) if on
        ]
        if flags:
            state += f" ({', '.join(flags)})"
        if self.check_status:
            detail = f": {self.check_detail}" if self.check_detail else ""
            state += f", last check {self.check_status}{detail}"
        return state


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
        # one buffer (tune.bufsize, 16 kB) are never replayed.
        "    retry-on conn-failure empty-response response-timeout",
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


def reply_error(command: str, reply: str) -> str | None:
    """HAProxy's complaint in `reply` to `command`, or None when the reply means success.

    Actions answer nothing, or "New server registered." / "Server deleted."; anything else
    ("No such server.", "Unknown command...", "Only servers in maintenance mode can be
    deleted.", "Require 'backend/server'.", ...) is a refusal. A `show` command succeeds when its
    dump starts as expected. No reply at all (the connection closed before HAProxy wrote even
    the empty line that ends every answer) leaves the outcome unknown: an error too.
    """
    if not reply:
        return "(no reply)"
    text = reply.strip()
    if command.startswith("show servers state"):
        ok = text.startswith("1\n# be_id")
    elif command.startswith("show stat"):
        ok = text.startswith("# pxname,")
    elif command.startswith("show "):
        ok = bool(text) and not _looks_refused(text)
    else:
        ok = text in _OK_REPLIES
    if ok:
        return None
    return text or "(no reply)"


def _looks_refused(text: str) -> bool:
    first = text.splitlines()[0]
    return first.startswith(("No such", "Unknown", "Can't", "Require", "Permission denied"))


def parse_servers_state(text: str) -> list[dict[str, str]]:
    """`show servers state`: one dict per server, keyed by the header's column names.

    The dump is a format version line ("1"), a header "# be_id be_name srv_id srv_name srv_addr
    srv_op_state srv_admin_state ...", then one space-separated line per server.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0].strip() != "1" or not lines[1].startswith("#"):
        raise TrafficError(f"unexpected `show servers state` output: {text[:200]!r}")
    columns = lines[1].lstrip("#").split()
    rows = []
    for line in lines[2:]:
        if line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < len(columns):
            raise TrafficError(f"short `show servers state` line: {line!r}")
        rows.append(dict(zip(columns, fields, strict=False)))
    return rows


def parse_stat(text: str) -> list[dict[str, str]]:
    """`show stat`: one dict per CSV line, keyed by the "# pxname,svname,..." header."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# pxname,"):
        raise TrafficError(f"unexpected `show stat` output: {text[:200]!r}")
    columns = lines[0].removeprefix("# ").split(",")
    return [dict(zip(columns, line.split(","), strict=False)) for line in lines[1:]]


def backends(
    state: Sequence[Mapping[str, str]], stat: Sequence[Mapping[str, str]]
) -> list[Backend]:
    """Join `show servers state` rows with `show stat` rows of the same backend by server name."""
    by_name = {
        row["svname"]: row for row in stat if row.get("svname") not in ("FRONTEND", "BACKEND")
    }
    joined = []
    for row in state:
        counters = by_name.get(row["srv_name"], {})
        joined.append(
            Backend(
                name=row["srv_name"],
                address=row["srv_addr"],
                port=int(row["srv_port"]),
                op_state=int(row["srv_op_state"]),
                admin_state=int(row["srv_admin_state"]),
                sessions=_int(counters.get("scur")),
                weight=int(row["srv_uweight"]),
                check_result=int(row["srv_check_result"]),
                check_status=counters.get("check_status", ""),
                check_detail=counters.get("last_chk", ""),
            )
        )
    return joined


def _int(value: str | None) -> int:
    return int(value) if value else 0


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
        _identifier("fleet", fleet)
        _ipv4("listen address", listen)
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
            _identifier("server", name)
            _ipv4(f"address of {name}", address)
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
        candidate = self.config_file.with_name(self.config_file.name + ".new")
        _write_private(candidate, text)
        checked = self._haproxy("-c", "-f", str(candidate))
        if not checked.ok:
            candidate.unlink(missing_ok=True)
            raise TrafficError(
                f"HAProxy refused the configuration of fleet {self.fleet}: {_alerts(checked)}"
            )
        candidate.replace(self.config_file)
        # The pid file is named in the configuration; `-p` as well would make HAProxy complain.
        started = self._haproxy("-D", "-f", str(self.config_file))
        if not started.ok:
            raise TrafficError(
                f"HAProxy of fleet {self.fleet} did not start: {_alerts(started)}",
                hint=f"is something else listening on {self.endpoint}?",
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.running():
            if time.monotonic() > deadline:
                raise TrafficError(
                    f"HAProxy of fleet {self.fleet} started but its socket {self.socket_path}"
                    f" did not answer within {START_TIMEOUT:.0f} s"
                )
            time.sleep(POLL)
        return True

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
            deadline = time.monotonic() + timeout
            while self._processes() and time.monotonic() < deadline:
                time.sleep(POLL)
        if self._processes():
            raise TrafficError(f"HAProxy of fleet {self.fleet} did not stop")
        self.pid_file.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)

    # --- the servers -------------------------------------------------------------------------

    def servers(self) -> list[Backend]:
        """Every server of the fleet's backend, in HAProxy's order."""
        state = parse_servers_state(self._command(f"show servers state {self.backend}"))
        stat = parse_stat(self._command(f"show stat {self.backend} 4 -1"))
        return backends(state, [row for row in stat if row.get("pxname") == self.backend])

    def server(self, name: str) -> Backend | None:
        return next((backend for backend in self.servers() if backend.name == name), None)

    def add(self, name: str, address: str) -> None:
        """Add a server, checked but without traffic (weight 0) until `wait_up` lets it in.

        Idempotent: a server of that name at the same address is taken out of maintenance or
        drain; at another address it is an error.
        """
        _identifier("server", name)
        _ipv4(f"address of {name}", address)
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
        deadline = time.monotonic() + timeout
        while True:
            current = self.server(name)
            if current is None:
                raise TrafficError(f"fleet {self.fleet} has no server {name}")
            if current.healthy and current.check_result in (CHECK_PASSED, CHECK_CONDPASS):
                break
            if time.monotonic() > deadline:
                raise TrafficError(
                    f"{name} ({current.address}:{current.port}) did not come up behind the"
                    f" load balancer of fleet {self.fleet} within {timeout:g} s:"
                    f" {current.describe()}",
                    hint=f"HAProxy checks it with `{self._check()}`"
                    + (f" and GET {self.health.path}" if self.health.type == "http" else ""),
                )
            time.sleep(POLL)
        if current.weight != SERVING_WEIGHT:
            self._command(f"set server {self.backend}/{name} weight {SERVING_WEIGHT}")

    def drain(self, name: str) -> None:
        """No new requests to this server; those in flight finish."""
        _identifier("server", name)
        self._command(f"set server {self.backend}/{name} state drain")

    def wait_drained(self, name: str, timeout: float) -> bool:
        """Wait until the server serves no request (scur 0, or gone); False at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.server(name)
            if current is None or current.sessions == 0:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL)

    def remove(self, name: str, timeout: float = DELETE_TIMEOUT) -> None:
        """Put the server in maintenance and delete it; nothing to do if it is not there.

        Maintenance stops new requests but lets those in flight finish, and HAProxy refuses to
        delete a server that still has connections: `del server` is retried until `timeout`.
        A request that ends after the server went into maintenance leaves its connection idle in
        the server's pool, where HAProxy 2.6 keeps it; entering maintenance closes idle
        connections, so once no request is left the server goes through drain to maintenance
        again.
        """
        _identifier("server", name)
        if self.server(name) is None:
            return
        target = f"{self.backend}/{name}"
        self._command(f"set server {target} state maint")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._send(f"del server {target}").strip()
            if reply in ("Server deleted.", "No such server."):
                return
            if not reply.startswith(_STILL_CONNECTED) or time.monotonic() > deadline:
                raise TrafficError(
                    f"HAProxy of fleet {self.fleet} refused `del server {target}`: {reply}"
                )
            current = self.server(name)
            if current is not None and current.sessions == 0:
                self._command(f"set server {target} state drain")
                self._command(f"set server {target} state maint")
            time.sleep(POLL)

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
        try:
            return process.run(["haproxy", *args], timeout=30, check=False)
        except CommandError as exc:
            raise TrafficError(exc.message, hint="`make setup` installs Debian's haproxy") from exc


def _pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)


def _alerts(result: process.CommandResult) -> str:
    """HAProxy's [ALERT] lines without their prefix, else the last lines of its output."""
    text = result.stderr or result.stdout
    alerts = [
        re.sub(r"^\[ALERT\]\s*(\(\d+\)\s*)?:\s*", "", line)
        for line in text.splitlines()
        if line.startswith("[ALERT]")
    ]
    return " / ".join(alerts or text.strip().splitlines()[-3:]) or f"exit {result.rc}"


def _identifier(what: str, name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise TrafficError(
            f"{what} name {name!r} is not a valid HAProxy identifier",
            hint="use letters, digits, '-', '_' and '.'",
        )


def _ipv4(what: str, address: str) -> None:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise TrafficError(f"{what} {address!r} is not an IPv4 address") from None

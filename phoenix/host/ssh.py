"""SSH sessions to servers, with host keys pinned out of band (never trust on first use)."""

from __future__ import annotations

import base64
import contextlib
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from phoenix.errors import (
    CommandTimeout,
    ConnectError,
    HostKeyError,
    OutputTooLarge,
    PhoenixError,
)
from phoenix.host.process import CommandResult
from phoenix.poll import ticks

if TYPE_CHECKING:  # paramiko is imported where a connection is made: it is slow to import
    import paramiko

_CHUNK = 65536
MAX_OUTPUT = 64 * 1024 * 1024  # bytes of stdout and stderr read of one command, by default


@dataclass(frozen=True, kw_only=True)
class Target:
    name: str
    address: str
    host_key: str  # "ssh-ed25519 AAAA...": the pinned public key line
    user: str = "root"
    port: int = 22


GRACE = 1.0  # seconds past a connection's deadline before its watchdog cuts it


class Watchdog:
    """A connection's wall deadline: past it (and GRACE), whatever the connection is doing
    (a handshake, a command, a stalled write), the watchdog closes it. Then `fired` is true, and
    the session says its deadline passed rather than that the connection dropped."""

    def __init__(self, name: str, deadline: float, budget: float) -> None:
        self.name = name
        self.deadline = deadline
        self.budget = budget  # the seconds the deadline allowed, for messages
        self.fired = False
        self._lock = threading.Lock()
        self._closers: list[Callable[[], None]] = []
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()) + GRACE, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        """Seconds to the deadline (negative past it)."""
        return self.deadline - time.monotonic()

    def guard(self, close: Callable[[], None]) -> None:
        """Call `close` when the watchdog fires; now, if it already has."""
        with self._lock:
            if not self.fired:
                self._closers.append(close)
                return
        _quietly(close)

    def cancel(self) -> None:
        self._timer.cancel()

    def expired(self, what: str) -> CommandTimeout:
        """The error of a connection past its deadline, doing `what`."""
        return CommandTimeout(
            f"{self.name}: {what} did not finish within {self.budget:.0f} s, the deadline of"
            " its whole scan",
            hint="the server answered too slowly or not at all; the deadline is the `timeout`"
            " of its section in phoenix.toml",
        )

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            closers, self._closers = self._closers, []
        for close in closers:
            _quietly(close)


def _quietly(close: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):  # cutting a connection that may already be failing
        close()


class Session:
    """One SSH connection: `run` a command, read a file.

    What a command writes is untrusted: at most `max_output` bytes of it are read (stdout and
    stderr together), and it has a deadline. With a `watchdog`, the connection has a wall
    deadline too: each command gets at most the time left to it, and none starts past it.
    """

    def __init__(
        self,
        target: Target,
        client: paramiko.SSHClient,
        max_output: int = MAX_OUTPUT,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.target = target
        self._client = client
        self.max_output = max_output
        self.watchdog = watchdog
        if watchdog is not None:
            watchdog.guard(client.close)

    def run(
        self, command: str, *args: str, timeout: float = 60, stdin: bytes = b""
    ) -> CommandResult:
        """Run `command` with `args` shell-quoted once, here; `stdin` is sent, then closed.

        `timeout` is a deadline for the whole command, not for each read: a command that hangs,
        or one that trickles output forever, ends in CommandTimeout (a ConnectError) all the
        same. A connection that drops before the command reports its exit code is a
        ConnectError. A command that writes more than `max_output` bytes (stdout and stderr
        together) is cut off: its channel is closed and OutputTooLarge raised.
        """
        line = command if not args else f"{command} {' '.join(shlex.quote(a) for a in args)}"
        if self.watchdog is not None:
            if self.watchdog.fired or self.watchdog.left() <= 0:
                raise self.watchdog.expired(f"`{_short(command)}`")
            timeout = min(timeout, self.watchdog.left())
        deadline = time.monotonic() + timeout
        try:
            return self._run(command, line, timeout, deadline, stdin)
        except ConnectError as exc:
            if self.watchdog is not None and self.watchdog.fired:
                raise self.watchdog.expired(f"`{_short(command)}`") from exc
            raise

    def _run(
        self, command: str, line: str, timeout: float, deadline: float, stdin: bytes
    ) -> CommandResult:
        import paramiko

        try:
            transport = self._client.get_transport()
            if transport is None or not transport.is_active():
                raise ConnectError(f"{self.target.name}: the connection is closed")
            with transport.open_session(timeout=timeout) as channel:
                channel.exec_command(line)
                feeder = _feed(channel, stdin)  # beside the reads: neither side waits on the other
                out, err, rc = _collect(channel, deadline, self._limit(command))
                feeder.join(timeout=1)
        except TimeoutError as exc:
            raise CommandTimeout(
                f"{self.target.name}: `{_short(command)}` did not finish within {timeout:.0f} s",
                hint="the command hung, or the server stopped answering; the deadline is"
                " the `timeout` of its section in phoenix.toml",
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectError(f"{self.target.name}: connection lost: {exc}") from exc
        if rc is None:
            raise ConnectError(
                f"{self.target.name}: the connection was dropped while `{_short(command)}` ran",
                hint="the server, its sshd or the network went away mid-command; run it again",
            )
        return CommandResult(rc, out.decode(errors="replace"), err.decode(errors="replace"))

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        self._client.close()

    def _limit(self, command: str) -> Callable[[int], None]:
        """What `_collect` calls with the bytes read so far: OutputTooLarge past max_output."""

        def check(total: int) -> None:
            if total > self.max_output:
                raise OutputTooLarge(
                    f"{self.target.name}: `{_short(command)}` wrote more than"
                    f" {self.max_output} bytes: phoenix stopped reading it",
                    hint="a server does not write that much unless it is meant to flood its"
                    " reader; if it is genuine, raise [drift] max_output in phoenix.toml",
                )

        return check

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _feed(channel: paramiko.Channel, data: bytes) -> threading.Thread:
    """Send `data` then end the command's stdin, in a thread: a command that writes much before
    it reads would otherwise wait for us to read while we wait for it to read."""

    import paramiko

    def send() -> None:
        try:
            if data:
                channel.sendall(data)
            channel.shutdown_write()
        except (OSError, paramiko.SSHException):
            pass  # the command ended or the connection dropped: _collect reports it

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _collect(
    channel: paramiko.Channel, deadline: float, limit: Callable[[int], None]
) -> tuple[bytes, bytes, int | None]:
    """Read stdout and stderr until the command exits; its exit code, None if none came.

    Raise TimeoutError at `deadline`; `limit(total bytes read)` after each read may raise, and
    then the channel is closed (the command's output is no longer read)."""
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        return _read(channel, deadline, limit, out, err)
    except BaseException:
        channel.close()
        raise


def _read(
    channel: paramiko.Channel,
    deadline: float,
    limit: Callable[[int], None],
    out: list[bytes],
    err: list[bytes],
) -> tuple[bytes, bytes, int | None]:
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline")
        channel.settimeout(min(remaining, 1.0))
        try:
            data = channel.recv(_CHUNK)
        except TimeoutError:
            data = None
        while channel.recv_stderr_ready():
            err.append(chunk := channel.recv_stderr(_CHUNK))
            total += len(chunk)
            limit(total)
        if data:
            out.append(data)
            total += len(data)
            limit(total)
        elif data == b"":  # stdout is at its end: the exit code comes next, or the close
            break
    if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
        raise TimeoutError("deadline")
    while channel.recv_stderr_ready():
        err.append(chunk := channel.recv_stderr(_CHUNK))
        total += len(chunk)
        limit(total)
    # paramiko sets the event with -1 as the code when the channel closes without one
    code = channel.exit_status
    return b"".join(out), b"".join(err), None if code == -1 else code


def _short(command: str) -> str:
    first = command.strip().splitlines()[0] if command.strip() else command
    return first if len(first) <= 60 else first[:57] + "..."


def connect(
    target: Target,
    private_key: Path,
    timeout: float = 15,
    max_output: int = MAX_OUTPUT,
    *,
    deadline: float | None = None,
) -> Session:
    """Open a session that accepts only the pinned host key of `target`; it reads at most
    `max_output` bytes of what each command writes.

    `timeout` bounds each step of the connection (TCP, banner, key exchange, authentication).
    With a `deadline` (time.monotonic()), the connection has a wall deadline from its first
    packet to its close (see Watchdog): CommandTimeout past it, whatever step it is in.
    """
    watchdog = None
    if deadline is not None:
        budget = deadline - time.monotonic()
        watchdog = Watchdog(target.name, deadline, budget)
        timeout = max(0.1, min(timeout, budget))
    try:
        return _connect(target, private_key, timeout, max_output, watchdog)
    except PhoenixError as exc:
        if watchdog is None:
            raise
        watchdog.cancel()
        if watchdog.fired or (isinstance(exc, ConnectError) and watchdog.left() <= 0):
            raise watchdog.expired("connecting") from exc
        raise


def _connect(
    target: Target,
    private_key: Path,
    timeout: float,
    max_output: int,
    watchdog: Watchdog | None,
) -> Session:
    import paramiko

    client = paramiko.SSHClient()
    key_type, key_b64 = target.host_key.split()[:2]
    pinned = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64))
    host = target.address if target.port == 22 else f"[{target.address}]:{target.port}"
    client.get_host_keys().add(host, key_type, pinned)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    pkey = paramiko.Ed25519Key.from_private_key_file(str(private_key))
    try:
        sock = _dial(target.address, target.port, timeout)
    except OSError as exc:
        raise ConnectError(
            f"cannot reach {target.name} at {target.address}:{target.port}: {exc}"
        ) from exc
    if watchdog is not None:  # shut the socket: any read or write of paramiko's ends at once
        watchdog.guard(lambda: _cut(sock, client))
    try:
        client.connect(
            target.address,
            port=target.port,
            username=target.user,
            pkey=pkey,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            allow_agent=False,
            look_for_keys=False,
            sock=sock,
        )
    except paramiko.BadHostKeyException as exc:
        _cut(sock, client)
        raise HostKeyError(
            f"{target.name} ({target.address}) presented a host key other than the pinned one",
            hint="the server may have been replaced or tampered with; it is not trusted",
        ) from exc
    except paramiko.AuthenticationException as exc:
        _cut(sock, client)
        raise ConnectError(
            f"{target.name} ({target.address}) refused the operator key", hint=str(exc)
        ) from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        _cut(sock, client)
        raise ConnectError(
            f"cannot reach {target.name} at {target.address}:{target.port}: {exc}"
        ) from exc
    except BaseException:
        _cut(sock, client)
        raise
    return Session(target, client, max_output, watchdog)


# Linux only; elsewhere the socket keeps the system's delayed acknowledgements
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _Socket(socket.socket):
    """A TCP connection to a server that never waits on the other side's acknowledgements.

    An SSH exchange is a dance of small messages, and both of TCP's waits hit it. With Nagle's
    algorithm, paramiko's second small write waits for the server to acknowledge its first. And
    the server's sshd keeps Nagle on for a command's session. After a login it sends a message
    the client need not answer (OpenSSH's host keys), then holds the next one (the channel's
    confirmation) until the client acknowledges the first. A Linux client delays that
    acknowledgement by 40 ms. Measured on the lab: a login took 65 ms and its first command 55
    ms; with TCP_NODELAY here and TCP_QUICKACK before each read, 20 ms and 11 ms.
    """

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if _QUICKACK is not None:  # the kernel drops back to delayed acks on its own: each read
            with contextlib.suppress(OSError):
                self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return super().recv(bufsize, flags)


def _dial(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to `address`:`port` for SSH (see _Socket); OSError if it fails."""
    plain = socket.create_connection((address, port), timeout=timeout)
    sock = _Socket(plain.family, plain.type, plain.proto, fileno=plain.detach())
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _cut(sock: socket.socket, client: paramiko.SSHClient) -> None:
    """Close a connection at once, from any thread: shut its socket, close its client."""
    with contextlib.suppress(OSError):  # not connected, or already shut
        sock.shutdown(socket.SHUT_RDWR)
    client.close()
    sock.close()


def wait_port(address: str, port: int, timeout: float) -> None:
    """Wait until something accepts TCP connections on address:port, or raise ConnectError."""
    refused: OSError | None = None
    for _ in ticks(timeout, interval=0.2):
        try:
            with socket.create_connection((address, port), timeout=2):
                return
        except OSError as exc:
            refused = exc
    raise ConnectError(
        f"nothing accepted connections on {address}:{port} within {timeout:.0f} s"
    ) from refused

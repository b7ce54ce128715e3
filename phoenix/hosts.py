"""SSH sessions to servers, with host keys pinned out of band (never trust on first use)."""

from __future__ import annotations

import base64
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paramiko

from phoenix.errors import ConnectError, HostKeyError
from phoenix.process import CommandResult


@dataclass(frozen=True)
class Target:
    name: str
    address: str
    host_key: str  # "ssh-ed25519 AAAA...": the pinned public key line
    user: str = "root"
    port: int = 22


class Session:
    """One SSH connection: `run` a command, read a file."""

    def __init__(self, target: Target, client: paramiko.SSHClient) -> None:
        self.target = target
        self._client = client

    def run(self, command: str, *args: str, timeout: float = 60) -> CommandResult:
        """Run `command` with `args` shell-quoted once, here."""
        line = command if not args else f"{command} {' '.join(shlex.quote(a) for a in args)}"
        try:
            _, stdout, stderr = self._client.exec_command(line, timeout=timeout)
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            rc = stdout.channel.recv_exit_status()
        except TimeoutError as exc:
            raise ConnectError(
                f"{self.target.name}: `{command}` did not finish within {timeout:.0f} s"
            ) from exc
        except (paramiko.SSHException, OSError) as exc:
            raise ConnectError(f"{self.target.name}: connection lost: {exc}") from exc
        return CommandResult(rc, out, err)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(target: Target, private_key: Path, timeout: float = 15) -> Session:
    """Open a session that accepts only the pinned host key of `target`."""
    client = paramiko.SSHClient()
    key_type, key_b64 = target.host_key.split()[:2]
    pinned = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64))
    host = target.address if target.port == 22 else f"[{target.address}]:{target.port}"
    client.get_host_keys().add(host, key_type, pinned)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            target.address,
            port=target.port,
            username=target.user,
            pkey=paramiko.Ed25519Key.from_private_key_file(str(private_key)),
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            allow_agent=False,
            look_for_keys=False,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyError(
            f"{target.name} ({target.address}) presented a host key other than the pinned one",
            hint="the server may have been replaced or tampered with; it is not trusted",
        ) from exc
    except paramiko.AuthenticationException as exc:
        client.close()
        raise ConnectError(
            f"{target.name} ({target.address}) refused the operator key", hint=str(exc)
        ) from exc
    except (paramiko.SSHException, OSError) as exc:
        client.close()
        raise ConnectError(
            f"cannot reach {target.name} at {target.address}:{target.port}: {exc}"
        ) from exc
    return Session(target, client)


def wait_port(address: str, port: int, timeout: float) -> None:
    """Wait until something accepts TCP connections on address:port, or raise ConnectError."""
    end = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=2):
                return
        except OSError as exc:
            if time.monotonic() > end:
                raise ConnectError(
                    f"nothing accepted connections on {address}:{port} within {timeout:.0f} s"
                ) from exc
            time.sleep(0.2)

"""What a fact needs from a connection: `run` one command. Plus the one way a fact command fails."""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from phoenix.errors import CommandError
from phoenix.facts import fields
from phoenix.host.process import CommandResult


class Runner(Protocol):
    """Anything that runs a command on a server; `phoenix.hosts.Session` is one."""

    def run(
        self, command: str, *args: str, timeout: float = ..., stdin: bytes = ...
    ) -> CommandResult: ...


def server_name(session: Runner) -> str:
    """The server's name for messages: `session.target.name` when the runner has one."""
    return str(getattr(getattr(session, "target", None), "name", None) or "the server")


MAX_LINE = 200  # characters of a server's error line quoted in a message


def last_line(text: str) -> str:
    """The last non-blank line of what a server wrote on stderr, for a message: control
    characters escaped, at most MAX_LINE characters."""
    lines = [line for line in fields.records(text, "\n") if line.strip()]
    if not lines:
        return "no error output"
    line = fields.CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", lines[-1].strip())
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."


def command_error(session: Runner, label: str, rc: int, stderr: str) -> CommandError:
    """The error for a fact command that failed: the server, the command, stderr's last line."""
    return CommandError(
        f"{server_name(session)}: `{label}` failed (exit {rc}): {last_line(stderr)}"
    )


def unreadable(session: Runner, label: str, exc: ValueError) -> CommandError:
    """The error for output a parser does not understand (another tool than the one expected)."""
    return CommandError(
        f"{server_name(session)}: `{label}` gave output phoenix cannot read: {exc}",
        hint="phoenix gathers facts with GNU find, GNU coreutils, dpkg and systemd",
    )


T = TypeVar("T")


def checked(session: Runner, label: str, result: CommandResult, parse: Callable[[str], T]) -> T:
    """`parse` of what a command printed; CommandError if it failed or is unreadable."""
    if result.rc != 0:
        raise command_error(session, label, result.rc, result.stderr)
    try:
        return parse(result.stdout)
    except ValueError as exc:
        raise unreadable(session, label, exc) from exc


READ_FILES = r"""for f; do
  if c=$(base64 -w0 -- "$f" 2>/dev/null); then printf 'ok %s\n' "$c"; else printf 'gone\n'; fi
done"""


def read_files(session: Runner, paths: Sequence[str], timeout: float = 60) -> dict[str, bytes]:
    """The bytes of each of `paths` on the server, in one command (base64: binary-safe over a
    text channel); a file that cannot be read (gone, not a file) is left out."""
    if not paths:
        return {}
    result = session.run(f"sh -c {shlex.quote(READ_FILES)} phoenix-read", *paths, timeout=timeout)
    found: dict[str, bytes] = {}
    for path, line in zip(paths, fields.records(result.stdout, "\n"), strict=False):
        status, _, data = line.partition(" ")
        if status != "ok":
            continue
        try:
            found[path] = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            continue
    return found

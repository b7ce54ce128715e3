"""Commands on the controller host: run one, or stream its output line by line."""

from __future__ import annotations

import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from phoenix.errors import CommandError, MissingPackages


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def run(args: Sequence[str], *, timeout: float | None = None, check: bool = True) -> CommandResult:
    """Run a command to completion; with `check`, a non-zero exit raises CommandError."""
    try:
        proc = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise CommandError(f"{args[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"`{' '.join(args)}` did not finish within {timeout:.0f} s") from exc
    result = CommandResult(proc.returncode, proc.stdout, proc.stderr)
    if check and not result.ok:
        last = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise CommandError(f"`{' '.join(args)}` failed (exit {result.rc}): {' / '.join(last)}")
    return result


def stream(
    args: Sequence[str],
    on_line: Callable[[str], None],
    *,
    log: Path | None = None,
    tail: int = 15,
) -> None:
    """Run a command, handing each output line (stdout and stderr merged) to `on_line` as it comes.

    With `log`, every line is also written there. A non-zero exit raises CommandError carrying the
    last `tail` lines, so the operator sees why without opening the log.
    """
    last: deque[str] = deque(maxlen=tail)
    log_file = log.open("a", encoding="utf-8") if log else None
    try:
        proc = subprocess.Popen(
            list(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise CommandError(f"{args[0]} is not installed") from exc
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            last.append(line)
            if log_file:
                log_file.write(raw)
            on_line(line)
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if log_file:
            log_file.close()
    if rc != 0:
        where = f"; full log: {log}" if log else ""
        lines = "\n  ".join(last)
        raise CommandError(f"`{args[0]}` failed (exit {rc}){where}. Last lines:\n  {lines}")


# Commands phoenix needs on the host, and the Debian package that provides each.
PACKAGES: dict[str, str] = {
    "lxd": "lxd",
    "lxc": "lxd",
    "ip6tables": "iptables",
    "mkfs.btrfs": "btrfs-progs",
    "debootstrap": "debootstrap",
    "tar": "tar",
}


def require(commands: Sequence[str]) -> None:
    """Raise MissingPackages naming the exact install command if any command is missing."""
    missing = sorted({PACKAGES.get(c, c) for c in commands if not has_command(c)})
    if missing:
        raise MissingPackages(
            f"missing Debian packages: {', '.join(missing)}",
            hint=f"install them with: apt-get install -y {' '.join(missing)}  (or run: make setup)",
        )


def has_command(name: str) -> bool:
    return (
        shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        is not None
    )

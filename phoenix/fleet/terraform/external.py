"""Your own Terraform or OpenTofu ([terraform] binary in phoenix.toml) instead of the bundled one.

python-terraform builds its command lines (`generate_cmd_string`: the binary, then the same
arguments the bundled engine gets). phoenix runs them as it runs the bundled engine: in a process
group of their own, output followed line by line, interrupted gracefully at their deadline. Not
python-terraform's own runner, which waits for the whole output, has no deadline and leaves its
child running on Ctrl-C; nor its `destroy()`, which passes `-force`, an option Terraform 0.15
removed: phoenix destroys a fleet's servers by applying an empty map, with either engine.

A binary that does not exist, is not Terraform (or OpenTofu), or is older than phoenix needs is
refused before it runs anything; a module whose `required_version` the binary does not meet is
refused by its own `init`, named with both versions (see `too_old`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from phoenix.errors import TerraformError
from phoenix.fleet.terraform.engine import INTERRUPT_GRACE, TIMEOUT, LibTerraform
from phoenix.host import process

MINIMUM = (0, 15, 4)  # `apply -json` (0.15.3), `plan -refresh-only` (0.15.4), `-chdir` (0.14)
NO_STATE = ".phoenix-no-state"  # a file never made: see ExternalTerraform.__init__
VERSION_TIMEOUT = 60.0  # seconds for `BINARY version -json`
SETTING = "[terraform] binary"
HINT = (
    f"set {SETTING} in phoenix.toml to a terraform or tofu executable, or remove it to use the"
    " Terraform bundled with phoenix"
)
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?")


class ExternalTerraform(LibTerraform):
    """The same calls as the bundled engine, run by `binary`."""

    def __init__(
        self,
        binary: Path,
        workdir: Path,
        env: Mapping[str, str],
        timeout: float = TIMEOUT,
        grace: float = INTERRUPT_GRACE,
    ) -> None:
        from python_terraform import Terraform as PythonTerraform  # only for this engine

        super().__init__(workdir, env, timeout, grace)
        self.binary = binary
        # python-terraform reads a state file when it is made (`state`, else ./terraform.tfstate
        # of the current directory, JSON that may be anything): point it at none
        self._commands = PythonTerraform(
            working_dir=str(workdir),
            state=NO_STATE,
            terraform_bin_path=str(binary),
            is_env_vars_included=False,
        )
        self._version: str | None = None

    @property
    def identity(self) -> str:
        return f"{self.binary} {self.version()}"

    def version(self) -> str:
        """The binary's version (`version -json`); TerraformError if it is not Terraform."""
        if self._version is None:
            self._version = self._read_version()
        return self._version

    def check(self) -> None:
        """Refuse a binary phoenix cannot drive, before it runs anything."""
        version = self.version()
        if _numbers(version) < MINIMUM:
            needed = ".".join(map(str, MINIMUM))
            raise TerraformError(
                f"{self.binary} is Terraform {version}; phoenix needs {needed} or newer",
                hint=f"install a newer terraform or tofu, or {HINT[0].lower()}{HINT[1:]}",
            )

    def _read_version(self) -> str:
        if not self.binary.is_file():
            raise TerraformError(f"{SETTING} {self.binary} does not exist", hint=HINT)
        if not os.access(self.binary, os.X_OK):
            raise TerraformError(f"{SETTING} {self.binary} is not executable", hint=HINT)
        from python_terraform import IsFlagged

        command = self._commands.generate_cmd_string("version", json=IsFlagged)
        try:
            run = process.run(command, timeout=VERSION_TIMEOUT, check=False, setting="terraform")
        except OSError as exc:  # not a program this machine can run
            raise TerraformError(
                f"{SETTING} {self.binary} cannot be run: {exc.strerror}", hint=HINT
            ) from exc
        version = _version_of(run.stdout) if run.rc == 0 else None
        if version is None:
            raise TerraformError(
                f"{SETTING} {self.binary} is not Terraform or OpenTofu:"
                f" `{self.binary} version -json` gave no version (exit {run.rc})",
                hint=HINT,
            )
        return version

    def _command(self, argv: list[str]) -> tuple[list[str], bytes]:
        """The binary's command line; it reads nothing on stdin."""
        return self._commands.generate_cmd_string(argv[0], *argv[1:]), b""


def _version_of(text: str) -> str | None:
    try:
        value = json.loads(text).get("terraform_version")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and _VERSION.fullmatch(value) else None


def _numbers(version: str) -> tuple[int, int, int]:
    match = _VERSION.fullmatch(version)
    if match is None:
        return (0, 0, 0)
    major, minor, patch = (int(n) for n in match.groups())
    return (major, minor, patch)


def too_old(stderr: str, binary: str, version: str) -> str | None:
    """The operator's message when `init` refused the module's `required_version`, else None."""
    if "Unsupported Terraform Core version" not in stderr and "Unsupported OpenTofu" not in stderr:
        return None
    wanted = re.search(r'required_version\s*=\s*"([^"\n]{1,80})"', stderr)
    needs = f" needs {wanted.group(1)}" if wanted else " needs a newer Terraform"
    return f"the module{needs}; {binary} is Terraform {version}"

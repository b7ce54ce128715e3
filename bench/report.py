"""Report benchmark: `phoenix schedule list` and `phoenix report`, 3 fleets of 10 recorded servers.

A workspace is recorded straight into a temporary store (the fleets, their servers, images, runs and
drift scans of tests/unit/reports.py: no lab needed). Each command runs as the operator runs it,
`python -m phoenix ...`, several times; the reference measured in the same run is
`python -m phoenix --version`, phoenix's fixed cost of starting (Python, typer, rich, the imports),
so the ratio says how much a command costs beyond starting. Also prints the HTML report's size.

Run: `.venv/bin/python bench/report.py [--runs 5]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.unit.reports import recorded  # noqa: E402  (the recorded workspace of the tests)


def timed(args: list[str], env: dict[str, str], runs: int) -> float:
    """The median wall time of `python -m phoenix ARGS`, in seconds; it must succeed."""
    took = []
    for _ in range(runs):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "phoenix", *args], env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        took.append(time.monotonic() - started)
        if done.returncode != 0:
            raise SystemExit(f"phoenix {' '.join(args)} failed: {done.stderr}")
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = recorded(Path(tmp))
        env = {**os.environ, "PHOENIX_CONFIG": str(ws.config_file), "PHOENIX_HOME": str(ws.home)}
        env["PYTHONPATH"] = str(REPO)
        html = Path(tmp) / "report.html"
        start = timed(["--version"], env, args.runs)
        listed = timed(["schedule", "list", "--json"], env, args.runs)
        report = timed(["report", "--json"], env, args.runs)
        with_html = timed(["report", "--html", str(html), "--json"], env, args.runs)
        print(f"3 fleets x 10 recorded servers, median of {args.runs} runs each")
        print(f"reference: phoenix --version (starting phoenix): {start * 1000:.0f} ms")
        for label, took in (
            ("phoenix schedule list --json", listed),
            ("phoenix report --json", report),
            ("phoenix report --html F --json", with_html),
        ):
            print(f"{label}: {took * 1000:.0f} ms, ratio to starting phoenix {took / start:.2f}")
        print(f"HTML report: {html.stat().st_size / 1024:.1f} KiB, self-contained")


if __name__ == "__main__":
    main()

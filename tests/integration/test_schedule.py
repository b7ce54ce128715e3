"""Schedules with the real cron daemon: applied from phoenix.toml, run by cron, removed again."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration.conftest import REPO, Lab, unique

pytestmark = pytest.mark.integration


def cron_running() -> bool:
    return subprocess.run(["pgrep", "-x", "cron"], capture_output=True).returncode == 0


@pytest.fixture
def scheduled(lab: Lab, tmp_path: Path) -> Iterator[tuple[Lab, str]]:
    if not cron_running():  # `make setup` starts it; a bare pytest run may not have
        subprocess.run(["cron"], check=True)
    wait_until("the cron daemon", cron_running, timeout=10)
    shutil.copytree(REPO / "images", tmp_path / "images")
    shutil.copytree(REPO / "infra", tmp_path / "infra")
    fleet = unique("sched")
    config = tmp_path / "phoenix.toml"
    config.write_text(
        f'[images.web]\n[fleets.{fleet}]\nimage = "web"\nsize = 1\nlisten_port = 18399\n'
        f'[schedules.every-minute]\nfleet = "{fleet}"\naction = "drift"\ncron = "* * * * *"\n'
    )
    ours = Lab(lab.home, {**lab.env, "PHOENIX_CONFIG": str(config)}, lab.lxd)
    yield ours, fleet
    config.write_text(f'[images.web]\n[fleets.{fleet}]\nimage = "web"\nsize = 1\n')
    ours.phoenix("schedule", "apply")  # never leave an entry in the machine's cron


def last_run(lab: Lab) -> object:
    listed = lab.phoenix("schedule", "list", "--json")
    assert listed.rc == 0, listed.stderr
    [one] = listed.json()  # type: ignore[misc]
    return one["last"]


def test_cron_runs_an_applied_schedule_and_stops_when_it_is_removed(
    scheduled: tuple[Lab, str],
) -> None:
    lab, fleet = scheduled
    applied = lab.phoenix("schedule", "apply", "--json")
    assert applied.rc == 0, applied.stderr
    listed = lab.phoenix("schedule", "list", "--json").json()
    assert listed[0]["state"] == "installed", listed  # type: ignore[index]
    again = lab.phoenix("schedule", "apply", "--json").json()
    assert {a["action"] for a in again["schedules"]} == {"unchanged"}, again  # type: ignore[index]

    ran = wait_until("cron to run the schedule", lambda: last_run(lab), timeout=150, interval=2)
    log = lab.home / "logs" / "schedule-every-minute.log"
    summary = f"schedule every-minute: drift {fleet}"  # its last line, once the run has ended
    wait_until("the run's summary line", lambda: summary in log.read_text(), timeout=120)
    assert ran["status"] != "running" or ran["kind"] == "drift", ran  # type: ignore[index]

    config = Path(lab.env["PHOENIX_CONFIG"])
    config.write_text(f'[images.web]\n[fleets.{fleet}]\nimage = "web"\nsize = 1\n')
    removed = lab.phoenix("schedule", "apply", "--json")
    assert removed.rc == 0, removed.stderr
    lines = log.read_text().count("schedule every-minute:")
    # Past the next minute's start, plus cron's latency: no new run may have started.
    now = datetime.now()
    wait_until(
        "the next minute to pass",
        lambda: (datetime.now() - now).total_seconds() > 60 - now.second + 20,
        timeout=90,
        interval=1,
    )
    assert log.read_text().count("schedule every-minute:") == lines

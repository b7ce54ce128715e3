"""Schedules: cron holds exactly what phoenix.toml declares (a tab file stands in for cron), the
list shows next and last runs, and `schedule run` ends with one summary line."""

from __future__ import annotations

import shlex
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from phoenix import ops
from phoenix.cli.app import main
from phoenix.config import load
from phoenix.drift.scan import ScanReport, ScanStatus, ServerScan
from phoenix.errors import ConfigError, ExitCode
from phoenix.schedule import entry, install, listing
from phoenix.schedule.cron import Target
from phoenix.schedule.install import Action
from phoenix.schedule.listing import CronState
from phoenix.state import RunKind, RunStatus, Store
from phoenix.workspace import Workspace

CONFIG = """
[images.web]

[fleets.web]
image = "web"
size = 2

[schedules.nightly-web]
fleet = "web"
action = "rebuild"
cron = "0 3 * * *"

[schedules.hourly-drift]
fleet = "web"
action = "drift"
cron = "15 * * * *"
"""

HAND = "# my own backup\n30 2 * * * /usr/local/bin/backup\n"
OTHER = "0 4 * * * cd /elsewhere && phoenix schedule run x # phoenix:0badcafe:nightly-web\n"


def workspace(tmp_path: Path, text: str = CONFIG) -> Workspace:
    path = tmp_path / "phoenix.toml"
    path.write_text(text)
    return Workspace(path, load(path), tmp_path / "state")


@pytest.fixture
def tab(tmp_path: Path) -> Target:
    path = tmp_path / "crontab"
    path.write_text(HAND + OTHER)
    return Target(path)


def actions(report: install.ApplyReport) -> dict[str, Action]:
    return {a.name: a.action for a in report.schedules}


def test_apply_writes_each_schedule_tagged_with_absolute_paths(tmp_path: Path, tab: Target) -> None:
    ws = workspace(tmp_path)
    report = install.apply(ws, tab)
    assert actions(report) == {"hourly-drift": Action.ADDED, "nightly-web": Action.ADDED}
    assert tab.path is not None
    text = tab.path.read_text()
    home = str((tmp_path / "state").resolve())
    line = next(x for x in text.splitlines() if x.startswith("0 3 * * * "))
    assert line.endswith(f"# phoenix:{entry.workspace_id(ws.home)}:nightly-web")
    assert f"cd {shlex.quote(str(tmp_path.resolve()))} && PHOENIX_HOME={home} " in line
    assert f"{sys.executable} -m phoenix --config {tmp_path.resolve()}/phoenix.toml" in line
    assert f"schedule run nightly-web >> {home}/logs/schedule-nightly-web.log 2>&1" in line
    assert "15 * * * * " in text and "schedule run hourly-drift" in text
    assert (tmp_path / "state" / "logs").is_dir()


def test_a_second_apply_changes_nothing(tmp_path: Path, tab: Target) -> None:
    ws = workspace(tmp_path)
    install.apply(ws, tab)
    assert tab.path is not None
    before = tab.path.read_text()
    again = install.apply(ws, tab)
    assert set(actions(again).values()) == {Action.UNCHANGED}
    assert not again.changed
    assert tab.path.read_text() == before


def test_a_changed_time_is_rewritten_once(tmp_path: Path, tab: Target) -> None:
    install.apply(workspace(tmp_path), tab)
    changed = install.apply(workspace(tmp_path, CONFIG.replace("0 3 * * *", "30 4 * * 1")), tab)
    assert actions(changed)["nightly-web"] is Action.CHANGED
    assert tab.path is not None
    text = tab.path.read_text()
    assert text.count("schedule run nightly-web") == 1
    assert "# phoenix:0badcafe:nightly-web" in text  # the other workspace's entry stays
    assert "30 4 * * 1 " in text and "0 3 * * * " not in text


def test_a_schedule_gone_from_the_config_loses_only_its_entry(tmp_path: Path, tab: Target) -> None:
    install.apply(workspace(tmp_path), tab)
    fewer = CONFIG[: CONFIG.index("[schedules.hourly-drift]")]
    report = install.apply(workspace(tmp_path, fewer), tab)
    assert actions(report) == {"nightly-web": Action.UNCHANGED, "hourly-drift": Action.REMOVED}
    assert tab.path is not None
    text = tab.path.read_text()
    assert "hourly-drift" not in text
    assert "30 2 * * * /usr/local/bin/backup" in text and "# my own backup" in text
    assert "# phoenix:0badcafe:nightly-web" in text and "cd /elsewhere" in text


def test_a_cron_d_file_names_root_and_is_world_readable(tmp_path: Path) -> None:
    target = Target(tmp_path / "cron.d" / "phoenix-test", system=True)
    install.apply(workspace(tmp_path), target)
    assert target.path is not None
    assert target.path.stat().st_mode & 0o777 == 0o644
    assert "0 3 * * * root cd " in target.path.read_text()
    assert not install.apply(workspace(tmp_path), target).changed


def test_list_shows_next_runs_last_run_and_what_cron_holds(tmp_path: Path, tab: Target) -> None:
    ws = workspace(tmp_path)
    # cron holds hourly-drift at 20 past: the config says 15 past
    install.apply(workspace(tmp_path, CONFIG.replace("15 * * * *", "20 * * * *")), tab)
    with Store.open(ws.home) as store:
        run_id = store.start_run(None, RunKind.DRIFT)
        store.finish_run(run_id, RunStatus.SUCCEEDED)
        with store.transaction() as db:
            db.execute("UPDATE runs SET schedule = 'hourly-drift' WHERE id = ?", (run_id,))
    now = datetime(2026, 12, 2, 22, 40, tzinfo=timezone(timedelta(hours=1)))
    views = {v.name: v for v in listing.schedules(ws, tab, now=now)}
    assert views["nightly-web"].next_runs == [
        "2026-12-03T03:00:00+01:00", "2026-12-04T03:00:00+01:00", "2026-12-05T03:00:00+01:00",
    ]  # fmt: skip
    assert views["nightly-web"].state is CronState.INSTALLED
    assert views["nightly-web"].last is None
    assert views["hourly-drift"].state is CronState.DIFFERENT
    assert views["hourly-drift"].next_runs[0] == "2026-12-02T23:15:00+01:00"
    last = views["hourly-drift"].last
    assert last is not None and (last.id, last.status, last.kind) == (run_id, "succeeded", "drift")
    assert last.seconds is not None and last.seconds >= 0
    assert tab.path is not None
    tab.path.write_text(HAND)
    assert {v.state for v in listing.schedules(ws, tab, now=now)} == {CronState.MISSING}


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("61 * * * *", "[61 * * * *] is not acceptable, out of range"),
        ("* * *", "Exactly 5, 6 or 7 columns has to be specified"),
    ],
)
def test_an_invalid_cron_is_a_config_error_with_croniters_reason(
    tmp_path: Path, cron: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        workspace(tmp_path, CONFIG.replace("0 3 * * *", cron))
    assert f"schedules.nightly-web.cron: bad value '{cron}': not a cron expression: " in str(
        caught.value
    )
    assert reason in caught.value.message


def test_cron_names_and_ranges_are_accepted(tmp_path: Path) -> None:
    ws = workspace(tmp_path, CONFIG.replace("0 3 * * *", "@daily").replace("15 *", "*/5 1-3"))
    assert ws.config.schedules["nightly-web"].cron == "@daily"


def test_a_schedule_of_an_undefined_fleet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        workspace(tmp_path, CONFIG.replace('fleet = "web"\naction = "drift"', 'fleet = "db"\n'
                                           'action = "drift"'))  # fmt: skip
    assert "schedules.hourly-drift.fleet: bad value 'db': must name a fleet" in caught.value.message


def test_schedule_run_of_a_drift_schedule_scans_its_fleet_and_prints_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path)
    monkeypatch.setenv("PHOENIX_HOME", str(ws.home))
    asked: list[list[str]] = []

    def drift(ws: Workspace, fleets: list[str], emit: object = None) -> ScanReport:
        asked.append(list(fleets))
        with Store.open(ws.home) as store:  # the scan records its run, as ops.drift does
            store.finish_run(store.start_run(None, RunKind.DRIFT), RunStatus.SUCCEEDED)
        clean = ServerScan(name="web-1", address="a", image="web-v1", fleet="web",
                           status=ScanStatus.CLEAN)  # fmt: skip
        drifted = ServerScan(name="web-2", address="b", image="web-v1", fleet="web",
                             status=ScanStatus.DRIFTED)  # fmt: skip
        return ScanReport(scanned_at="t", servers=[clean, drifted])

    monkeypatch.setattr(ops, "drift", drift)
    rc = main(["--config", str(ws.config_file), "schedule", "run", "hourly-drift"])
    out = capsys.readouterr().out
    assert asked == [["web"]]
    assert rc == ExitCode.OK  # the report has no finding at or above fail_on
    assert len(out.splitlines()) == 1
    assert out.rstrip().endswith(
        "Z schedule hourly-drift: drift web was clean in 0 s: 1 clean, 1 drifted (exit 0)"
    )
    with Store.open(ws.home) as store:
        assert listing.history.last(store, "hourly-drift") is not None


def test_schedule_run_of_a_failed_rebuild_still_ends_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path)
    monkeypatch.setenv("PHOENIX_HOME", str(ws.home))

    def run(*args: object, **kwargs: object) -> None:
        from phoenix.errors import LockHeld

        raise LockHeld("fleet web is locked by\nanother run")

    monkeypatch.setattr(ops, "run", run)
    rc = main(["--config", str(ws.config_file), "schedule", "run", "nightly-web"])
    out = capsys.readouterr().out.splitlines()
    assert rc == ExitCode.REFUSED
    assert out[-1].endswith(
        "schedule nightly-web: rebuild web failed in 0 s: fleet web is locked by another run"
        " (exit 2)"
    )


def test_apply_and_list_render_as_text(
    tmp_path: Path, tab: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    from phoenix.cli import render

    ws = workspace(tmp_path)
    render.schedules_applied(install.apply(ws, tab))
    render.schedules(listing.schedules(ws, tab))
    out = capsys.readouterr().out
    assert "nightly-web" in out and "added" in out and f"{tab.path}: updated" in out
    assert "installed" in out and "never" in out and "rebuild web" in out

"""phoenix report: what it reads from the store, and its text, JSON, HTML and metrics."""

from __future__ import annotations

import json
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from phoenix.cli.app import main
from phoenix.errors import ExitCode, NotFound
from phoenix.report import FleetReport, Report, build, span, to_html, write_metrics
from phoenix.report.build import schedule
from phoenix.workspace import Workspace
from tests.unit.reports import EVIL, FLEETS, NOW, recorded


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("PHOENIX_HOME", str(tmp_path / "home"))  # the CLI's, too
    return recorded(tmp_path)


def web_due(fleet: str) -> dict[str, list[str]]:
    return {"web-g1-4": ["older than max_age 3d"], "web-g1-5": []} if fleet == "web" else {}


def fleet_of(report: Report, name: str) -> FleetReport:
    return next(f for f in report.fleets if f.name == name)


def test_every_fleet_with_its_servers_sizes_and_ages(ws: Workspace) -> None:
    report = build(ws, now=NOW)
    assert [f.name for f in report.fleets] == list(FLEETS)
    assert [(f.size, f.serving, len(f.servers)) for f in report.fleets] == [
        (10, 10, 10), (10, 8, 10), (10, 10, 10)
    ]  # fmt: skip
    web = fleet_of(report, "web")
    assert web.max_age_seconds == 3 * 86400
    one = next(s for s in web.servers if s.name == "web-g1-3")
    assert one.age_seconds == 3 * 86400 and one.image == "base-v001"
    assert one.image_age_seconds == 20 * 86400 and one.address == "10.213.0.3"
    assert report.images == {"base-v001": 20 * 86400, "base-v002": 2 * 86400}
    assert [f.name for f in build(ws, ["db"], now=NOW).fleets] == ["db"]


def test_an_unknown_fleet_names_the_defined_ones(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="no fleet nope") as caught:
        build(ws, ["nope"], now=NOW)
    assert "api, db, web" in (caught.value.hint or "")


def test_the_last_scan_of_each_server_and_its_findings(ws: Workspace) -> None:
    web = fleet_of(build(ws, now=NOW), "web")
    by_name = {s.name: s for s in web.servers}
    clean_now, drifted = by_name["web-g1-1"], by_name["web-g1-2"]
    assert clean_now.last_scan == drifted.last_scan == "2026-03-01T11:00:00.000+00:00"
    assert clean_now.findings == {"low": 0, "medium": 0, "high": 0}  # the older finding is gone
    assert drifted.findings == {"low": 1, "medium": 0, "high": 2}
    assert by_name["web-g1-3"].last_scan is None and by_name["web-g1-3"].findings == {}


def test_due_is_unknown_without_a_policy_and_its_reasons_with_one(ws: Workspace) -> None:
    web = fleet_of(build(ws, now=NOW), "web")
    assert web.due is None and {s.due_text for s in web.servers} == {"unknown"}
    web = fleet_of(build(ws, now=NOW, due_of=web_due), "web")
    by_name = {s.name: s for s in web.servers}
    assert by_name["web-g1-4"].due and by_name["web-g1-4"].due_text == "older than max_age 3d"
    assert by_name["web-g1-5"].due is False and by_name["web-g1-1"].due_text == "no"
    assert web.due == 1


def test_the_next_three_runs_of_each_schedule_and_the_last_ten_runs(ws: Workspace) -> None:
    report = build(ws, now=NOW)
    web, db = fleet_of(report, "web"), fleet_of(report, "db")
    assert [s.name for s in web.schedules] == ["web-drift", "web-nightly"]
    assert db.schedules == []
    nightly = [datetime.fromisoformat(t) for t in web.schedules[1].next_runs]
    assert len(nightly) == 3 and all(t.hour == 3 and t.minute == 0 for t in nightly)
    assert nightly[0] > NOW and nightly[0] < nightly[1] < nightly[2]
    assert (nightly[1] - nightly[0]).days == 1
    assert [r.id for r in web.runs] == list(range(12, 2, -1))  # the newest 10
    assert web.runs[0].outcome == "running" and web.runs[0].duration_seconds is None
    assert web.runs[1].duration_seconds == 70.0 and web.runs[1].outcome == "succeeded"
    assert [(r.action, r.outcome) for r in fleet_of(report, "api").runs] == [
        ("deploy", "rolled_back")
    ]


def test_a_cron_expression_croniter_refuses_is_shown_not_raised() -> None:
    row = schedule("bad", "drift", "99 * * * *", NOW)
    assert row.next_runs == [] and row.error and "99" in row.error


def test_json_is_the_whole_report(ws: Workspace) -> None:
    data = json.loads(json.dumps(build(ws, now=NOW, due_of=web_due).as_dict()))
    web = data["fleets"][2]
    assert web["name"] == "web" and web["due"] == 1 and len(web["servers"]) == 10
    drifted = next(s for s in web["servers"] if s["name"] == "web-g1-2")
    assert drifted["findings"]["high"] == 2 and len(web["runs"]) == 10
    assert web["schedules"][1]["cron"] == "0 3 * * *" and data["images"]["base-v002"] == 172800


def test_span() -> None:
    assert [span(s) for s in (None, 5, 120, 3600, 3720, 86400, 90000)] == [
        "-", "5s", "2m", "1h", "1h 2m", "1d", "1d 1h"
    ]  # fmt: skip


# -- metrics ------------------------------------------------------------------------------------


def samples(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


def test_metrics_file_parses_back(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "phoenix.prom"
    write_metrics(ws, path, now=NOW)
    got = samples(path)
    assert path.stat().st_mode & 0o777 == 0o644
    assert not [p for p in path.parent.iterdir() if p != path]  # no temp file left
    ages = got["phoenix_server_age_seconds"]
    assert len(ages) == 30
    key = (("fleet", "web"), ("image", "base-v001"), ("server", "web-g1-3"))
    assert ages[key] == 3 * 86400
    drift = got["phoenix_drift_findings"]
    assert drift[(("fleet", "web"), ("server", "web-g1-2"), ("severity", "high"))] == 2
    assert drift[(("fleet", "web"), ("server", "web-g1-1"), ("severity", "medium"))] == 0
    assert len(drift) == 6  # 2 scanned servers x 3 severities; the unscanned are absent
    fleets = got["phoenix_fleet_servers"]
    assert fleets[(("fleet", "db"), ("state", "serving"))] == 8
    assert fleets[(("fleet", "db"), ("state", "size"))] == 10
    assert not any(dict(k)["state"] == "due" for k in fleets)  # unknown: absent
    runs = got["phoenix_last_run_timestamp_seconds"]
    rolled = runs[(("action", "deploy"), ("fleet", "api"), ("outcome", "rolled_back"))]
    assert rolled == NOW.timestamp() - 4 * 3600
    assert (("action", "rebuild"), ("fleet", "web"), ("outcome", "running")) in runs
    assert got["phoenix_image_age_seconds"][(("image", "base-v002"),)] == 2 * 86400


def test_metrics_count_due_servers_with_a_policy(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "phoenix.prom"
    write_metrics(ws, path, due_of=web_due, now=NOW)
    fleets = samples(path)["phoenix_fleet_servers"]
    assert fleets[(("fleet", "web"), ("state", "due"))] == 1
    assert fleets[(("fleet", "api"), ("state", "due"))] == 0


# -- HTML ---------------------------------------------------------------------------------------


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def test_html_shows_an_injected_name_as_text(ws: Workspace) -> None:
    page = parsed(to_html(build(ws, now=NOW)))
    names = [t for t, _ in page.tags]
    assert "script" not in names
    assert EVIL in page.text  # a table cell's text, and the chart's label
    assert page.text.count(EVIL) >= 2


def test_html_has_a_table_and_a_chart_per_fleet_and_fetches_nothing(ws: Workspace) -> None:
    page = parsed(to_html(build(ws, now=NOW)))
    classes = [(t, a.get("class")) for t, a in page.tags]
    assert classes.count(("table", "servers")) == 3
    assert classes.count(("svg", "chart")) == 3
    rects = [a for t, a in page.tags if t == "rect"]
    assert len(rects) == 30 + 2  # an age bar per server; web-g1-2's findings: high, low
    assert all(float(a["width"] or 0) > 0 for a in rects)
    assert [a["class"] for a in rects].count("old") == 7  # web's servers older than 3d
    assert len([a for t, a in page.tags if t == "line"]) == 2  # api and web have a max_age
    assert not [a for _, a in page.tags if "src" in a or "href" in a]
    assert not [t for t, _ in page.tags if t in ("link", "img", "iframe", "object")]


# -- the command --------------------------------------------------------------------------------


def test_the_command_prints_every_fleet_whole_and_writes_its_files(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html, prom = tmp_path / "out" / "report.html", tmp_path / "out" / "phoenix.prom"
    argv = ["--config", str(ws.config_file), "report", "--html", str(html), "--metrics", str(prom)]
    assert main(argv) == ExitCode.OK
    captured = capsys.readouterr()
    for fleet in FLEETS:
        assert f"{fleet} (base):" in captured.out
    assert "web-g1-10" not in captured.out and EVIL in captured.out
    assert all(f"db-g1-{n} " in captured.out for n in range(1, 11))
    assert "web-nightly (rebuild, 0 3 * * *) next:" in captured.out
    assert "rolled_back" in captured.out
    assert "wrote the HTML report" in captured.err and html.read_text().startswith("<!doctype")
    assert "phoenix_fleet_servers" in prom.read_text()


def test_the_command_json(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(ws.config_file), "report", "web", "db", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in data["fleets"]] == ["web", "db"]
    first = data["fleets"][0]["servers"][0]
    assert first["due"] is True and first["due_reasons"], first  # the recorded servers are old


def test_the_command_refuses_an_unknown_fleet(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(ws.config_file), "report", "nope"]) == ExitCode.REFUSED
    assert "no fleet nope" in capsys.readouterr().err

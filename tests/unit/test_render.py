"""A server's text on the terminal and in the reports: never markup, never raw, never cut."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from typer.testing import CliRunner

from phoenix import ops
from phoenix.cli import render
from phoenix.cli.app import app
from phoenix.config import Severity
from phoenix.drift import evidence, report, scan
from phoenix.drift.diff import Finding
from phoenix.drift.scan import Change, ScanReport, ScanStatus, ServerScan
from phoenix.events import Outcome, StepFinished, StepStarted
from phoenix.text import printable

CONFIG = '[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n'
LONG = "/etc/" + "deep/" * 60 + "name.conf"
NAMES = ["[/]", "[bold red]x[/]", "\x1b[2J", "a\rb", "evil\u202etxt", ":smile:", LONG]
ESC = "\x1b"


def drifted(subjects: list[str], name: str = "web-g1-1", error: str | None = None) -> ServerScan:
    findings = [
        Finding(kind="file.modified", subject=s, severity=Severity.HIGH, before="[red]", after=s)
        for s in subjects
    ]
    return ServerScan(name=name, address="10.0.0.1", image="web-v001", fleet="web",
                      status=ScanStatus.DRIFTED, findings=findings, error=error)  # fmt: skip


def phoenix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("PHOENIX_HOME", str(tmp_path / "home"))
    config = tmp_path / "phoenix.toml"
    config.write_text(CONFIG)
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> ScanReport:
    found = ScanReport(
        scanned_at="2024-01-01T00:00:00+00:00",
        servers=[drifted(NAMES, error="[/] \x1b]0;title\x07")],
        problems=["[bold]fleet api[/]: \x1b[31mno\x1b[0m"],
    )
    monkeypatch.setattr(ops, "drift", lambda *_: found)
    return found


def test_the_drift_report_shows_hostile_names_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: ScanReport
) -> None:
    rc, out = phoenix(tmp_path, monkeypatch, "drift", "web")
    assert rc == hostile.exit_code == 2  # a problem: not everything was checked
    assert ESC not in out and "\r" not in out and "\u202e" not in out
    for shown in ("[/]", "[bold red]x[/]", "\\x1b[2J", "a\\x0db", "evil\\u202etxt", ":smile:"):
        assert shown in out
    assert LONG in out  # whole: no wrapping, no ellipsis without a terminal
    assert "[red]" in out  # a before value, literally
    assert "\\x1b]0;title\\x07" in out and "[bold]fleet api[/]: \\x1b[31mno" in out


def test_json_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: ScanReport
) -> None:
    rc, out = phoenix(tmp_path, monkeypatch, "drift", "web", "--json")
    assert rc == hostile.exit_code and ESC not in out
    subjects = [f["subject"] for f in json.loads(out)["servers"][0]["findings"]]
    assert subjects == NAMES
    assert '"[bold red]x[/]"' in out


def test_changes_and_evidence_are_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    subject = "[/]\x1b[2J" + LONG
    change = Change(at="2024-01-01T00:00:00", change="appeared", server="web-g1-1",
                    kind="file.added", subject=subject, severity=Severity.LOW)  # fmt: skip
    monkeypatch.setattr(scan, "changes_since", lambda *_: [change])
    content = "line [/]\n\x1b[2Jcleared\tand\r\n"
    kept = SimpleNamespace(text=content, path="/etc/\x1b[2J", content=b"x", sha256="0" * 64,
                           archived_at="2024-01-01T00:00:00+00:00")  # fmt: skip
    monkeypatch.setattr(evidence, "lookup", lambda _ws, _server, path: [kept])
    rc, out = phoenix(tmp_path, monkeypatch, "drift", "changes", "--since", "7d")
    assert rc == 0 and ESC not in out and "[/]\\x1b[2J" + LONG in out
    rc, out = phoenix(tmp_path, monkeypatch, "drift", "evidence", "web-g1-1", "/etc/x")
    assert (rc, out) == (0, "line [/]\n\\x1b[2Jcleared\tand\\x0d\n")
    rc, out = phoenix(tmp_path, monkeypatch, "drift", "evidence", "web-g1-1")
    assert rc == 0 and ESC not in out and "/etc/\\x1b[2J" in out


def test_progress_and_errors_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    shown = StringIO()
    with render.Progress(console=Console(file=shown, width=40)) as progress:
        progress(StepStarted(step="scan", title="scan [/] \x1b[2J"))
        progress(
            StepFinished(
                step="scan", outcome=Outcome.FAILED, detail="[bold]x\x1b" + LONG, seconds=2
            )
        )
    assert ESC not in shown.getvalue() and "\\x1b[2J" in shown.getvalue()
    assert "[bold]x\\x1b" + LONG in shown.getvalue()
    render.error("[/] \x1b[2J", hint="[red]")
    render.line("[/]")
    out, err = capsys.readouterr()
    assert out == "[/]\n" and err == "error: [/] \\x1b[2J\nhint: [red]\n"


HOSTILE = ["]]>", "<script>alert(1)</script>", "a&b", "q\"u'o", "\x01", "\x1b[2J", "\ud800",
           "\ufffe", "evil\u202e"]  # fmt: skip


def test_junit_stays_valid_xml(tmp_path: Path) -> None:
    servers = [drifted([f"/etc/{n}" for n in HOSTILE], name=f"web-{n}") for n in HOSTILE]
    servers.append(dataclasses.replace(servers[0], status=ScanStatus.UNREACHABLE, error="]]>\x01"))
    path = tmp_path / "junit.xml"
    report.write(path, report.to_junit(ScanReport(scanned_at="t", servers=servers)))
    root = ET.fromstring(path.read_bytes())
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases[: len(HOSTILE)]] == [
        printable(f"web-{n}") for n in HOSTILE
    ]
    failure = cases[0].find("failure")
    assert failure is not None and failure.text is not None
    assert failure.text.splitlines()[0] == "[high] file.modified /etc/]]>: [red] -> /etc/]]>"
    assert "/etc/\\x01" in failure.text and "/etc/\\ud800" in failure.text
    error = cases[-1].find("error")
    assert error is not None and error.get("message") == "unreachable: ]]>\\x01"


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids += [v or "" for k, v in attrs if k == "id"]

    def handle_data(self, data: str) -> None:
        self.text += data


def test_html_shows_names_and_injects_nothing() -> None:
    servers = [drifted([f"/etc/{n}" for n in HOSTILE], name=f"web-{n}") for n in HOSTILE]
    html = report.to_html(ScanReport(scanned_at="t", servers=servers))
    page = Tags()
    page.feed(html)
    page.close()
    assert "script" not in page.tags
    assert set(page.tags) <= {"html", "head", "meta", "title", "style", "body", "h1", "p", "span",
                              "h2", "small", "code", "table", "tr", "th", "td"}  # fmt: skip
    assert page.ids == [printable(f"web-{n}") for n in HOSTILE]  # quotes stay in the attribute
    assert "/etc/<script>alert(1)</script>" in page.text and "/etc/\\x1b[2J" in page.text
    assert ESC not in html and "\x01" not in html and "\ud800" not in html

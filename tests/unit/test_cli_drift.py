"""`phoenix drift`: a command group whose default is `scan`, so any fleet name can be scanned."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix import ops
from phoenix.cli.app import app
from phoenix.drift import evidence, scan
from phoenix.drift.promote import promote
from phoenix.drift.scan import Change, ScanReport
from phoenix.errors import Refused

CONFIG = '[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n'


@dataclass
class Calls:
    """What the core was asked, one (function, arguments) per call."""

    made: list[tuple[str, Any]] = field(default_factory=list)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    seen = Calls()

    def drift(_ws: object, fleets: list[str], *_: object) -> ScanReport:
        seen.made.append(("scan", list(fleets)))
        return ScanReport(scanned_at="2024-01-01T00:00:00+00:00", servers=[])

    def changes_since(_ws: object, since: str, fleets: list[str]) -> list[Change]:
        seen.made.append(("changes", (since, list(fleets))))
        return [
            Change(
                at="2024-01-01",
                change="appeared",
                server="web-g1-1",
                kind="file.changed",
                subject="/etc/motd",
                severity="low",
            )
        ]

    def lookup(_ws: object, server: str, path: str | None) -> list[object]:
        seen.made.append(("evidence", (server, path)))
        return [SimpleNamespace(text="kept\n")] if path else []

    def promote_(_ws: object, server: str, paths: list[str], **_: object) -> object:
        seen.made.append(("promote", (server, paths)))
        raise SystemExit(0)  # what a promotion renders is tested elsewhere

    monkeypatch.setattr(ops, "drift", drift)
    monkeypatch.setattr(scan, "changes_since", changes_since)
    monkeypatch.setattr(evidence, "lookup", lookup)
    monkeypatch.setattr(promote, "promote", promote_)
    return seen


def phoenix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("PHOENIX_HOME", str(tmp_path / "home"))
    config = tmp_path / "phoenix.toml"
    config.write_text(CONFIG)
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "fleets"),
    [
        (["drift", "web"], ["web"]),
        (["drift"], []),
        (["drift", "--json"], []),
        (["drift", "--json", "web", "api"], ["web", "api"]),
        (["drift", "web", "--fail-on", "high"], ["web"]),
        (["drift", "--all", "web"], []),
        (["drift", "scan", "web"], ["web"]),
        (["drift", "scan", "rules"], ["rules"]),  # a fleet named like a sub-command
        (["drift", "scan", "changes", "evidence"], ["changes", "evidence"]),
        (["drift", "scanner"], ["scanner"]),  # close to a sub-command is still a fleet
        (["drift", "--", "promote"], ["promote"]),
    ],
)
def test_scan_is_the_default(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    calls: Calls,
    args: list[str],
    fleets: list[str],
) -> None:
    rc, _ = phoenix(tmp_path, monkeypatch, *args)
    assert (rc, calls.made) == (0, [("scan", fleets)])


def test_scan_json_is_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> None:
    rc, out = phoenix(tmp_path, monkeypatch, "drift", "web", "--json")
    assert rc == 0
    assert json.loads(out) == {
        "scanned_at": "2024-01-01T00:00:00+00:00",
        "servers": [],
        "problems": [],
    }


def test_rules_lists_the_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> None:
    rc, out = phoenix(tmp_path, monkeypatch, "drift", "rules", "--json")
    assert rc == 0 and calls.made == []
    assert isinstance(json.loads(out), list) and json.loads(out)


@pytest.mark.parametrize(
    "args", [["drift", "changes", "--since", "7d", "web"], ["drift", "--since", "7d", "web"]]
)
def test_changes_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Calls, args: list[str]
) -> None:
    rc, out = phoenix(tmp_path, monkeypatch, *args, "--json")
    assert (rc, calls.made) == (0, [("changes", ("7d", ["web"]))])
    assert json.loads(out)[0]["subject"] == "/etc/motd"


def test_changes_needs_since(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Calls) -> None:
    rc, out = phoenix(tmp_path, monkeypatch, "drift", "changes")
    assert rc == 2 and "--since" in out and calls.made == []


def test_evidence_and_promote_take_their_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> None:
    assert phoenix(tmp_path, monkeypatch, "drift", "evidence", "web-g1-1", "--json")[0] == 0
    assert phoenix(tmp_path, monkeypatch, "drift", "evidence", "web-g1-1", "/etc/motd") == (
        0,
        "kept\n",
    )
    args = ("drift", "promote", "web-g1-1", "--path", "/etc/a", "--path", "/etc/b")
    assert phoenix(tmp_path, monkeypatch, *args)[0] == 0
    assert calls.made == [
        ("evidence", ("web-g1-1", None)),
        ("evidence", ("web-g1-1", "/etc/motd")),
        ("promote", ("web-g1-1", ["/etc/a", "/etc/b"])),
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["drift", "promote"],
        ["drift", "promote", "a", "b"],
        ["drift", "evidence"],
        ["drift", "web", "--path", "/etc"],  # --path only goes with promote
    ],
)
def test_usage_errors_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Calls, args: list[str]
) -> None:
    rc, _ = phoenix(tmp_path, monkeypatch, *args)
    assert rc == 2 and calls.made == []


def test_help_lists_the_sub_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> None:
    rc, out = phoenix(tmp_path, monkeypatch, "drift", "--help")
    assert rc == 0 and calls.made == []
    for name in ("scan", "changes", "rules", "evidence", "promote"):
        assert f" {name} " in out


@pytest.fixture
def purges(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    made: list[tuple[Any, Any]] = []

    def purge(_ws: object, server: str | None, older_than: object) -> evidence.Purged:
        made.append((server, older_than))
        return evidence.Purged(contents=3, links=4)

    monkeypatch.setattr(evidence, "purge", purge)
    return made


def test_purge_without_a_terminal_needs_yes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, purges: list[tuple[Any, Any]]
) -> None:
    monkeypatch.setenv("PHOENIX_HOME", str(tmp_path / "home"))
    (tmp_path / "phoenix.toml").write_text(CONFIG)
    args = ["--config", str(tmp_path / "phoenix.toml"), "drift", "evidence", "--purge", "web-g1-1"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, Refused) and "--yes" in str(result.exception)
    assert purges == []
    rc, out = phoenix(tmp_path, monkeypatch, "drift", "evidence", "--purge", "web-g1-1", "--yes")
    assert rc == 0 and "removed 3 archived content(s) of web-g1-1" in out
    rc, out = phoenix(
        tmp_path, monkeypatch, "drift", "evidence", "--older-than", "30d", "--yes", "--json"
    )
    assert rc == 0 and json.loads(out) == {"removed": 3, "unlinked": 4}
    assert purges == [("web-g1-1", None), (None, timedelta(days=30))]


def test_purge_on_a_terminal_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, purges: list[tuple[Any, Any]]
) -> None:
    monkeypatch.setattr("phoenix.cli.common.terminal", lambda: True)
    monkeypatch.setenv("PHOENIX_HOME", str(tmp_path / "home"))
    (tmp_path / "phoenix.toml").write_text(CONFIG)
    args = ["--config", str(tmp_path / "phoenix.toml"), "drift", "evidence", "--purge", "w-1"]
    assert CliRunner().invoke(app, args, input="n\n").exit_code == 1
    assert purges == []
    result = CliRunner().invoke(app, [*args, "--older-than", "2d"], input="y\n")
    assert result.exit_code == 0 and "Delete the evidence of w-1 archived over 2d ago?" in (
        result.output
    )
    assert purges == [("w-1", timedelta(days=2))]


@pytest.mark.parametrize(
    "args",
    [
        ["--purge", "web-g1-1", "web-g1-1"],  # the server twice
        ["--older-than", "a while", "--yes"],
    ],
)
def test_purge_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, purges: list[tuple[Any, Any]], args: list[str]
) -> None:
    rc, _ = phoenix(tmp_path, monkeypatch, "drift", "evidence", *args)
    assert rc != 0 and purges == []

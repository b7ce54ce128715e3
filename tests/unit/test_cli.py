"""The CLI edge: one-line errors and exit codes."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest

from phoenix import ops
from phoenix.cli import crash, render
from phoenix.cli.app import main
from phoenix.drift.scan import ScanReport, ScanStatus, ServerScan
from phoenix.errors import ExitCode


def test_bad_config_is_one_clear_error_and_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "phoenix.toml"
    bad.write_text("[fleets.web]\nimage = 'web'\nsize = 0\n[images.web]\n")
    rc = main(["--config", str(bad), "lab", "status"])
    err = capsys.readouterr().err
    assert rc == ExitCode.REFUSED
    assert "fleets.web.size" in err and "0" in err
    assert "Traceback" not in err


def test_missing_config_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--config", str(tmp_path / "nope.toml"), "doctor"])
    err = capsys.readouterr().err
    assert rc == ExitCode.REFUSED
    assert "nope.toml" in err and "--config" in err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "sideways"]) == ExitCode.REFUSED


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == ExitCode.OK
    assert "phoenix" in capsys.readouterr().out


def test_drift_text_says_which_image_has_no_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    error = "image web-v001 has no baseline to compare with: bake it again"
    clean = ServerScan(name="web-1", address="a", image="web-v001", fleet="web",
                       status=ScanStatus.CLEAN)  # fmt: skip
    servers = [clean, dataclasses.replace(clean, name="web-2")]
    servers.append(dataclasses.replace(clean, name="web-3", status=ScanStatus.NO_BASELINE,
                                       error=error))  # fmt: skip
    render.drift(ScanReport(scanned_at="t", servers=servers))
    out = capsys.readouterr().out
    assert f"no_baseline web-3 (a, web-v001): {error}" in out
    assert out.splitlines()[-1] == "2 clean, 1 no_baseline"


# -- a bug: one line, the traceback in a crash log ---------------------------------------------

CONFIG = '[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n'


@pytest.fixture
def crashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`phoenix history` whose core call raises an unexpected RuntimeError; the command line."""
    (tmp_path / "phoenix.toml").write_text(CONFIG)
    monkeypatch.setenv("PHOENIX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(crash.TRACEBACK_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(ops, "history", boom)
    return ["--config", str(tmp_path / "phoenix.toml"), "history"]


def crash_logs(directory: Path) -> list[Path]:
    return sorted(directory.glob("*crash-*.log"))


def test_a_bug_is_one_line_and_a_crash_log_in_the_state_directory(
    tmp_path: Path, crashing: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "home").mkdir()
    assert main(crashing) == ExitCode.INTERNAL == 70
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first, hint = err.strip().splitlines()
    assert first == "error: internal error: RuntimeError: boom"
    (log,) = crash_logs(tmp_path / "home" / "logs")
    assert str(log) in hint.replace("\n", "")
    assert log.name.startswith("crash-20") and log.stat().st_mode & 0o777 == 0o600
    text = log.read_text()
    assert "Traceback" in text and "RuntimeError: boom" in text and "history" in text


@pytest.mark.parametrize("how", ["option", "env"])
def test_traceback_on_request(
    tmp_path: Path,
    crashing: list[str],
    how: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "home").mkdir()
    if how == "env":
        monkeypatch.setenv(crash.TRACEBACK_ENV, "1")
    argv = ["--traceback", *crashing] if how == "option" else crashing
    assert main(argv) == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in boom" in err
    assert err.rstrip().splitlines()[-2] == "error: internal error: RuntimeError: boom"
    assert len(crash_logs(tmp_path / "home" / "logs")) == 1


def test_without_a_state_directory_the_crash_log_is_a_private_temp_file(
    tmp_path: Path, crashing: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(crashing) == ExitCode.INTERNAL
    assert not (tmp_path / "home").exists()  # a crash creates no state directory
    (log,) = crash_logs(tmp_path / "tmp")
    assert log.stat().st_mode & 0o777 == 0o600 and "RuntimeError: boom" in log.read_text()
    assert str(log) in capsys.readouterr().err.replace("\n", "")


def test_an_unwritable_state_directory_falls_back_to_a_temp_file(
    tmp_path: Path,
    crashing: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "logs").write_text("a file where the logs directory should be")
    assert main(crashing) == ExitCode.INTERNAL
    assert len(crash_logs(tmp_path / "tmp")) == 1


def test_ctrl_c_is_130_and_quiet(
    crashing: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ops, "history", interrupted)
    assert main(crashing) == ExitCode.INTERRUPTED == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err

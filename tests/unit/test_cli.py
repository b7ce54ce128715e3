"""The CLI edge: one-line errors and exit codes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from phoenix.cli import render
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

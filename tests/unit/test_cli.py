"""The CLI edge: one-line errors and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.cli.app import main
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

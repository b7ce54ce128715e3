"""Destructive commands: a prompt on a terminal; without one, refused unless --yes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import typer

from phoenix.cli import common
from phoenix.cli.app import main
from phoenix.errors import ExitCode, Refused


class Stdin:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_without_a_terminal_only_yes_goes_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(False))
    monkeypatch.setattr(typer, "confirm", lambda *a, **k: pytest.fail("asked without a terminal"))
    common.confirm(True, "Go?", "go")
    with pytest.raises(Refused, match="refused to destroy fleet web without a terminal") as caught:
        common.confirm(False, "Go?", "destroy fleet web")
    assert "--yes" in caught.value.message and caught.value.exit_code == ExitCode.REFUSED
    assert "\n" not in str(caught.value)


def test_on_a_terminal_the_operator_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(True))
    asked: list[str] = []
    answer = [True]
    monkeypatch.setattr(typer, "confirm", lambda q, **k: asked.append(q) or answer[0])
    common.confirm(False, "Destroy web?", "destroy fleet web")
    answer[0] = False
    with pytest.raises(Refused, match="not confirmed: did not destroy fleet web"):
        common.confirm(False, "Destroy web?", "destroy fleet web")
    assert asked == ["Destroy web?", "Destroy web?"]


@pytest.mark.parametrize(
    ("args", "what"),
    [(["lab", "down", "--purge"], "purge the lab"), (["destroy", "web"], "destroy fleet web")],
)
def test_destructive_commands_refuse_in_cron_without_yes(
    args: list[str],
    what: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(False))
    monkeypatch.setenv("PHOENIX_HOME", str(tmp_path / "home"))
    config = tmp_path / "phoenix.toml"
    config.write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n')
    assert main(["--config", str(config), *args]) == ExitCode.REFUSED
    err = capsys.readouterr().err
    assert f"refused to {what} without a terminal" in err and "--yes" in err


@pytest.mark.parametrize(("remove", "asked"), [([], False), (["web-g1-3"], True)])
def test_deploy_asks_only_when_it_removes_servers(
    remove: list[str],
    asked: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Topping a fleet up is what deploy is for; taking servers away (a fleet above its size)
    is asked first, as a rebuild is: a `size` mistyped in the config is not obeyed blindly."""
    from phoenix import ops
    from phoenix.fleet.plan import Batch, Plan, Result, RolloutStatus, Strategy
    from phoenix.state import RunKind

    plan = Plan(
        fleet="web", kind=RunKind.DEPLOY, image="web-1", strategy=Strategy.ROLLING,
        batches=[Batch(remove=remove, add=0 if remove else 1)],
    )  # fmt: skip
    ran: list[str] = []
    done = Result(plan=plan, run_id=1, status=RolloutStatus.SUCCEEDED)
    monkeypatch.setattr(ops, "plan", lambda *a, **k: plan)
    monkeypatch.setattr(ops, "run", lambda *a, **k: ran.append("run") or done)
    monkeypatch.setattr(sys, "stdin", Stdin(False))
    monkeypatch.setenv("PHOENIX_HOME", str(tmp_path / "home"))
    config = tmp_path / "phoenix.toml"
    config.write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n')
    code = main(["--config", str(config), "deploy", "web"])
    if asked:
        assert code == ExitCode.REFUSED and not ran
        assert "refused to deploy fleet web without a terminal" in capsys.readouterr().err
        assert main(["--config", str(config), "deploy", "web", "--yes"]) == ExitCode.OK
    else:
        assert code == ExitCode.OK
    assert ran == ["run"]

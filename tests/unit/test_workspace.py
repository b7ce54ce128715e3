"""The workspace: one lookup of a fleet or an image by name, one NotFound."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.config import load
from phoenix.errors import ConfigError, ExitCode, NotFound
from phoenix.workspace import Workspace

CONFIG = """
[images.web]
[images.api]
[fleets.web]
image = "web"
size = 2
"""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "phoenix.toml").write_text(CONFIG)
    return Workspace(tmp_path / "phoenix.toml", load(tmp_path / "phoenix.toml"), tmp_path / "h")


def test_a_defined_fleet_and_image_are_found(ws: Workspace) -> None:
    assert ws.fleet("web").size == 2
    assert ws.image("api") is ws.config.images["api"]


def test_an_unknown_fleet_is_not_found_naming_the_defined_ones(ws: Workspace) -> None:
    with pytest.raises(NotFound, match=r"no fleet db in .*phoenix\.toml") as caught:
        ws.fleet("db")
    assert caught.value.hint == "defined fleets: web"
    assert caught.value.exit_code == ExitCode.REFUSED
    assert not isinstance(caught.value, ConfigError)  # the file is fine; the name is not


def test_an_unknown_image_is_not_found_naming_the_defined_ones(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="no image db") as caught:
        ws.image("db")
    assert caught.value.hint == "defined images: api, web"

"""Bake logic without Packer: templates, inputs, composition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phoenix.errors import BakeError
from phoenix.image import template as tpl

REPO = Path(__file__).resolve().parents[2]


def write_template(tmp_path: Path, body: object) -> Path:
    path = tmp_path / "t.pkr.json"
    path.write_text(json.dumps(body) if not isinstance(body, str) else body)
    return path


def test_missing_template(tmp_path: Path) -> None:
    with pytest.raises(BakeError, match="no Packer template"):
        tpl.load_template(tmp_path / "nope.pkr.json")


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = write_template(tmp_path, '{\n  "builders": [\n    {"type": "lxd",}\n  ]\n}')
    with pytest.raises(BakeError, match=r"line 3, column"):
        tpl.load_template(path)


def test_template_without_builders(tmp_path: Path) -> None:
    with pytest.raises(BakeError, match="builders"):
        tpl.load_template(write_template(tmp_path, {"provisioners": []}))


def test_inputs_cover_every_provisioned_file_and_the_parent() -> None:
    path = REPO / "images" / "web.pkr.json"
    template = tpl.load_template(path)
    inputs = tpl.input_hashes(path, template, "f" * 64)
    assert inputs["parent"] == "f" * 64
    assert {"file:web/provision.sh", "file:web/files/index.html"} <= set(inputs)


def test_inputs_change_when_a_provisioned_file_changes(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.conf").write_text("one")
    body = {"builders": [{"type": "lxd"}], "provisioners": [{"type": "file", "source": "files"}]}
    path = write_template(tmp_path, body)
    before = tpl.input_hashes(path, body, "p")
    (tmp_path / "files" / "a.conf").write_text("two")
    assert tpl.input_hashes(path, body, "p") != before


def test_provisioned_file_missing(tmp_path: Path) -> None:
    body = {"builders": [{"type": "lxd"}], "provisioners": [{"type": "shell", "script": "x.sh"}]}
    with pytest.raises(BakeError, match=r"x\.sh"):
        tpl.input_hashes(write_template(tmp_path, body), body, "p")


def test_compose_points_the_builder_at_the_lab_waits_for_boot_and_cleans_last(
    tmp_path: Path,
) -> None:
    body = {
        "builders": [{"type": "lxd", "image": "whatever"}],
        "provisioners": [{"type": "shell", "script": "p.sh"}],
    }
    composed = tpl.compose(
        body,
        tmp_path,
        parent="phoenix-base",
        tag="web-v001",
        container="b",
        profile="phoenix-build",
    )
    builder = composed["builders"][0]
    assert builder["image"] == "phoenix-base" and builder["output_image"] == "web-v001"
    assert builder["container_name"] == "b" and builder["profile"] == "phoenix-build"
    assert composed["provisioners"][0] == tpl.BOOTED  # nothing lands in /tmp before boot ends
    assert composed["provisioners"][1]["script"] == str(tmp_path / "p.sh")
    assert composed["provisioners"][-1]["inline"] == tpl.CLEANUP
    assert body["builders"][0]["image"] == "whatever"  # the original is untouched

"""Drift of the servers themselves: Terraform's view turned into findings, with plain data."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix import ops
from phoenix.config import load
from phoenix.drift.diff import SEVERITY, Finding, Rules
from phoenix.drift.servers import server_findings
from phoenix.fleet.records import Records, ServerStatus
from phoenix.fleet.terraform.drift import ResourceDrift
from phoenix.state import Store
from phoenix.workspace import Workspace

GONE = ResourceDrift("web-g1-3", "delete", {"status": "Running", "limits": {}}, {})
STOPPED = ResourceDrift("web-g1-1", "update", {"status": "Running"}, {"status": "Stopped"})
LIMITED = ResourceDrift("web-g1-2", "update", {"limits": {}}, {"limits": {"cpu": "1"}})


def test_gone_stopped_and_limited_servers() -> None:
    assert server_findings([LIMITED, GONE, STOPPED]) == [
        Finding("server.missing", "web-g1-3", "high", "Running", None),
        Finding("server.stopped", "web-g1-1", "high", "Running", "Stopped"),
        Finding("server.config", "web-g1-2:limits.cpu", "medium", None, "1"),
    ]


def test_each_changed_config_key_is_a_finding_of_its_own() -> None:
    before = {"user.phoenix.image": "web-v001", "user.phoenix.fleet": "web"}
    after = {
        "user.phoenix.image": "hacked",
        "user.phoenix.fleet": "web",
        "security.nesting": "true",
    }
    drift = ResourceDrift("web-g1-1", "update", {"config": before}, {"config": after})
    assert server_findings([drift]) == [
        Finding("server.config", "web-g1-1:security.nesting", "medium", None, "true"),
        Finding("server.config", "web-g1-1:user.phoenix.image", "medium", "web-v001", "hacked"),
    ]


def test_limits_removed_by_hand_and_other_attributes() -> None:
    drift = ResourceDrift(
        "a",
        "update",
        {"limits": {"memory": "1GiB"}, "profiles": ["default"], "privileged": False},
        {"limits": {}, "profiles": ["default", "extra"], "privileged": True},
    )
    assert server_findings([drift]) == [
        Finding("server.config", "a:limits.memory", "medium", "1GiB", None),
        Finding("server.config", "a:privileged", "medium", "false", "true"),
        Finding("server.config", "a:profiles", "medium", '["default"]', '["default","extra"]'),
    ]


def test_a_server_started_again_is_not_drift() -> None:
    started = ResourceDrift("a", "update", {"status": "Stopped"}, {"status": "Running"})
    assert server_findings([started]) == []


def test_frozen_is_not_running_either() -> None:
    frozen = ResourceDrift("a", "update", {"status": "Running"}, {"status": "Frozen"})
    assert server_findings([frozen]) == [
        Finding("server.stopped", "a", "high", "Running", "Frozen")
    ]


def test_server_rules_leave_subjects_out() -> None:
    rules = Rules.with_extra(["server:*:limits.*"])
    assert [f.kind for f in server_findings([LIMITED, STOPPED], rules)] == ["server.stopped"]


def test_the_kinds_have_severities() -> None:
    assert SEVERITY["server.missing"] == SEVERITY["server.stopped"] == "high"
    assert SEVERITY["server.config"] == "medium"


class FakeTerraform:
    def __init__(self, drifts: list[ResourceDrift]) -> None:
        self.drifts = drifts

    def drift(self) -> list[ResourceDrift]:
        return self.drifts


def test_server_drift_leaves_out_servers_a_rollout_is_retiring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "phoenix.toml").write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 2\n')
    ws = Workspace(tmp_path / "phoenix.toml", load(tmp_path / "phoenix.toml"), tmp_path / "home")
    with Store.open(ws.home) as store:
        records = Records(store)
        records.ensure_fleet("web", {})
        with store.transaction() as db:
            db.execute("INSERT INTO images (name, version, tag, status, template_sha256)"
                       " VALUES ('web', 1, 'web-v001', 'ready', 't')")  # fmt: skip
        generation = records.new_generation("web", "web-v001")
        records.add_servers("web", generation, "web-v001", ["web-g1-1", "web-g1-9"])
        records.set_status(["web-g1-9"], ServerStatus.REMOVING)
    retired = ResourceDrift("web-g1-9", "update", {"status": "Running"}, {"status": "Stopped"})
    monkeypatch.setattr(ops, "_terraform", lambda *_: FakeTerraform([STOPPED, retired]))
    events: list[object] = []
    found = ops.server_drift(ws, "web", events.append)
    assert [(f.kind, f.subject) for f in found] == [("server.stopped", "web-g1-1")]
    assert events  # the step was reported

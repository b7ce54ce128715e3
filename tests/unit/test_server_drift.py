"""Drift of the servers themselves: Terraform's view turned into findings, with plain data."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix import ops
from phoenix.config import Severity, load
from phoenix.drift.diff import SEVERITY, Finding, Rules
from phoenix.drift.servers import server_findings
from phoenix.fleet.records import Records, ServerStatus
from phoenix.fleet.terraform.drift import ResourceDrift
from phoenix.state import Store
from phoenix.workspace import Workspace

GONE = ResourceDrift(
    server="web-g1-3", action="delete", before={"status": "Running", "limits": {}}, after={}
)
STOPPED = ResourceDrift(
    server="web-g1-1", action="update", before={"status": "Running"}, after={"status": "Stopped"}
)
LIMITED = ResourceDrift(
    server="web-g1-2", action="update", before={"limits": {}}, after={"limits": {"cpu": "1"}}
)


def test_gone_stopped_and_limited_servers() -> None:
    assert server_findings([LIMITED, GONE, STOPPED]) == [
        Finding(
            kind="server.missing",
            subject="web-g1-3",
            severity=Severity.HIGH,
            before="Running",
            after=None,
        ),
        Finding(
            kind="server.stopped",
            subject="web-g1-1",
            severity=Severity.HIGH,
            before="Running",
            after="Stopped",
        ),
        Finding(
            kind="server.config",
            subject="web-g1-2:limits.cpu",
            severity=Severity.MEDIUM,
            before=None,
            after="1",
        ),
    ]


def test_each_changed_config_key_is_a_finding_of_its_own() -> None:
    before = {"user.phoenix.image": "web-v001", "user.phoenix.fleet": "web"}
    after = {
        "user.phoenix.image": "hacked",
        "user.phoenix.fleet": "web",
        "security.nesting": "true",
    }
    drift = ResourceDrift(
        server="web-g1-1", action="update", before={"config": before}, after={"config": after}
    )
    assert server_findings([drift]) == [
        Finding(
            kind="server.config",
            subject="web-g1-1:security.nesting",
            severity=Severity.MEDIUM,
            before=None,
            after="true",
        ),
        Finding(
            kind="server.config",
            subject="web-g1-1:user.phoenix.image",
            severity=Severity.MEDIUM,
            before="web-v001",
            after="hacked",
        ),
    ]


def test_limits_removed_by_hand_and_other_attributes() -> None:
    drift = ResourceDrift(
        server="a",
        action="update",
        before={"limits": {"memory": "1GiB"}, "profiles": ["default"], "privileged": False},
        after={"limits": {}, "profiles": ["default", "extra"], "privileged": True},
    )
    assert server_findings([drift]) == [
        Finding(
            kind="server.config",
            subject="a:limits.memory",
            severity=Severity.MEDIUM,
            before="1GiB",
            after=None,
        ),
        Finding(
            kind="server.config",
            subject="a:privileged",
            severity=Severity.MEDIUM,
            before="false",
            after="true",
        ),
        Finding(
            kind="server.config",
            subject="a:profiles",
            severity=Severity.MEDIUM,
            before='["default"]',
            after='["default","extra"]',
        ),
    ]


def test_a_server_started_again_is_not_drift() -> None:
    started = ResourceDrift(
        server="a", action="update", before={"status": "Stopped"}, after={"status": "Running"}
    )
    assert server_findings([started]) == []


def test_frozen_is_not_running_either() -> None:
    frozen = ResourceDrift(
        server="a", action="update", before={"status": "Running"}, after={"status": "Frozen"}
    )
    assert server_findings([frozen]) == [
        Finding(
            kind="server.stopped",
            subject="a",
            severity=Severity.HIGH,
            before="Running",
            after="Frozen",
        )
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
    retired = ResourceDrift(
        server="web-g1-9",
        action="update",
        before={"status": "Running"},
        after={"status": "Stopped"},
    )
    monkeypatch.setattr(ops, "_terraform", lambda *_: FakeTerraform([STOPPED, retired]))
    events: list[object] = []
    found = ops.server_drift(ws, "web", events.append)
    assert [(f.kind, f.subject) for f in found] == [("server.stopped", "web-g1-1")]
    assert events  # the step was reported

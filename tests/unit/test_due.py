"""The nightly policy, pure: which servers are due for replacement, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from phoenix.config import FleetConfig, Severity
from phoenix.fleet.due import due_servers
from phoenix.fleet.records import LastScan, ServerRecord, ServerStatus
from phoenix.image.registry import ImageRecord, Status

NOW = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)


def image(version: int, status: Status = Status.READY, name: str = "web") -> ImageRecord:
    return ImageRecord(
        name=name, version=version, tag=f"{name}-v{version:03d}", status=status,
        provider_id=None, template_sha256="t", inputs={}, parent=None, parent_id=None,
        packer_version=None, built_at=None, log_path=None, error=None, baseline=None,
    )  # fmt: skip


def server(name: str, hours: float, tag: str = "web-v002") -> ServerRecord:
    created = (NOW - timedelta(hours=hours)).isoformat()
    return ServerRecord(
        name=name, fleet="web", generation=1, address=None, image_tag=tag, host_key=None,
        status=ServerStatus.SERVING, created_at=created, removed_at=None,
    )  # fmt: skip


def cfg(**extra: object) -> FleetConfig:
    return FleetConfig.model_validate({"image": "web", "size": 3, **extra})


IMAGES = {i.tag: i for i in (image(1), image(2), image(3, Status.REVOKED))}
NEWEST = IMAGES["web-v002"]


def reasons(config: FleetConfig, servers: list[ServerRecord], **scans: LastScan) -> dict[str, str]:
    found = due_servers(config, servers, IMAGES, NEWEST, scans, NOW)
    return {d.server: "; ".join(d.reasons) for d in found}


def test_servers_older_than_max_age_are_due() -> None:
    servers = [server("a", 24 * 8), server("b", 24 * 6), server("c", 1)]
    assert reasons(cfg(max_age="7d"), servers) == {"a": "older than max_age 7d (created 8d ago)"}
    assert reasons(cfg(), servers) == {}  # no max_age: age never makes a server due


def test_a_revoked_or_older_image_makes_a_server_due() -> None:
    servers = [server("a", 1, "web-v001"), server("b", 1, "web-v003"), server("c", 1)]
    assert reasons(cfg(), servers) == {
        "a": "built from web-v001, older than the newest ready web-v002",
        "b": "built from revoked image web-v003",
    }


@pytest.mark.parametrize(
    ("found", "replace_on", "is_due"),
    [
        (Severity.HIGH, Severity.HIGH, True),
        (Severity.MEDIUM, Severity.HIGH, False),
        (Severity.MEDIUM, Severity.MEDIUM, True),
        (Severity.HIGH, None, False),  # replace_on unset: drift never makes a server due
    ],
)
def test_drift_at_or_above_the_threshold_makes_a_server_due(
    found: Severity, replace_on: Severity | None, is_due: bool
) -> None:
    scan = LastScan(at="2024-05-01T01:00:00+00:00", findings=[("file.modified", "/etc/x", found)])
    got = reasons(cfg(replace_on=replace_on), [server("a", 1)], a=scan)
    assert ("a" in got) is is_due
    if is_due:
        assert got["a"].startswith(f"drifted: 1 finding(s) at or above {replace_on}")


def test_a_fleet_rebuilt_this_afternoon_is_not_due_tonight() -> None:
    servers = [server(n, 12) for n in ("a", "b", "c")]  # on the newest image, 12 hours old
    clean = LastScan(at="2024-05-01T01:00:00+00:00", findings=[])
    low = LastScan(
        at="2024-05-01T01:00:00+00:00", findings=[("file.added", "/tmp/x", Severity.LOW)]
    )
    config = cfg(max_age="1d", replace_on="medium")
    assert reasons(config, servers, a=clean, b=low) == {}


def test_reasons_add_up() -> None:
    scan = LastScan(at="2024-05-01T01:00:00+00:00", findings=[("user.added", "eve", Severity.HIGH)])
    got = reasons(cfg(max_age="7d", replace_on="low"), [server("a", 24 * 9, "web-v003")], a=scan)
    assert got["a"].count("; ") == 2 and "revoked" in got["a"] and "user.added" in got["a"]

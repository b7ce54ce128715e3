"""The image registry: versions, status, prune rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.errors import NotFound
from phoenix.image.registry import Catalog, Registry, Status
from phoenix.state import Store, now


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(Store.open(tmp_path))


def add(registry: Registry, name: str, status: Status, parent: str | None = None) -> str:
    record = registry.begin(name, "t", {"template": "t"}, parent, "pid", Path("/logs"))
    if status is Status.READY:
        registry.ready(record.tag, f"fp-{record.tag}", "1.6.6", {"files": {}})
    elif status is Status.FAILED:
        registry.failed(record.tag, "boom")
    return record.tag


def test_versions_count_up_per_name(registry: Registry) -> None:
    assert add(registry, "web", Status.READY) == "web-v001"
    assert add(registry, "web", Status.FAILED) == "web-v002"
    assert add(registry, "api", Status.READY) == "api-v001"
    latest = registry.latest("web")
    assert latest is not None and latest.tag == "web-v001"  # the newest *ready* one
    failed = registry.get("web-v002")
    assert failed.status is Status.FAILED and failed.error == "boom"
    assert failed.log_path == "/logs/bake-web-v002.log"


def test_unknown_tag_lists_known(registry: Registry) -> None:
    add(registry, "web", Status.READY)
    with pytest.raises(NotFound, match="no image web-v009") as caught:
        registry.get("web-v009")
    assert "web-v001" in str(caught.value.hint)


def test_provider_id_and_latest_read_one_record(registry: Registry) -> None:
    add(registry, "web", Status.READY)
    add(registry, "web", Status.READY)
    add(registry, "web", Status.FAILED)
    building = registry.begin("web", "t", {"template": "t"}, None, "pid", Path("/logs")).tag
    assert registry.provider_id("web-v002") == "fp-web-v002"
    assert registry.provider_id(building) is None  # not baked yet
    with pytest.raises(NotFound, match="no image web-v009") as caught:
        registry.provider_id("web-v009")
    assert caught.value.hint is not None and "web-v001" in caught.value.hint
    latest = registry.latest("web")
    assert latest is not None and latest.tag == "web-v002"
    newest = registry.latest("web", status=None)
    assert newest is not None and newest.tag == building
    assert [r.tag for r in registry.interrupted()] == [building]


def test_prune_keeps_newest_ready_and_anything_in_use(registry: Registry) -> None:
    tags = [add(registry, "web", Status.READY) for _ in range(4)]
    add(registry, "web", Status.FAILED)
    child = add(registry, "api", Status.READY, parent=tags[1])
    with registry.store.transaction() as db:
        db.execute("INSERT INTO fleets (name, created_at) VALUES ('web', ?)", (now(),))
        db.execute(
            "INSERT INTO generations (fleet, number, image_tag, created_at)"
            " VALUES ('web', 1, ?, ?)",
            (tags[0], now()),
        )
        db.execute(
            "INSERT INTO servers (name, fleet, generation, image_tag, status, created_at)"
            " VALUES ('web-1', 'web', 1, ?, 'serving', ?)",
            (tags[0], now()),
        )
    deleted: list[str] = []
    removed = Catalog(registry, "phoenix-base", deleted.append).prune(keep=1)
    assert removed == ["web-v003", "web-v005"]  # v1 runs a server, v2 is api's parent, v4 kept
    assert deleted == ["fp-web-v003"]  # the failed one had no image to delete
    view = Catalog(registry, "phoenix-base", deleted.append).view(child)
    assert view.ancestry == [child, "web-v002", "phoenix-base"]


def test_revoke(registry: Registry) -> None:
    tag = add(registry, "web", Status.READY)
    view = Catalog(registry, "phoenix-base", lambda fp: None).revoke(tag)
    assert view.record.status is Status.REVOKED
    assert registry.latest("web") is None

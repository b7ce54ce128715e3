"""State stores laid out for tests: a fleet `web` on image `web-v001`, its servers serving."""

from __future__ import annotations

from collections.abc import Sequence

from phoenix.state import Store
from phoenix.workspace import Workspace


def serving_fleet(ws: Workspace, names: Sequence[str]) -> None:
    """Record fleet `web`, its image web-v001 (ready), generation 1 and `names` serving on it."""
    with Store.open(ws.home) as store, store.transaction() as db:
        db.execute("INSERT INTO fleets (name, created_at) VALUES ('web', 'x')")
        db.execute("INSERT INTO images (name, version, tag, status, template_sha256)"
                   " VALUES ('web', 1, 'web-v001', 'ready', 't')")  # fmt: skip
        db.execute("INSERT INTO generations (fleet, number, image_tag, created_at)"
                   " VALUES ('web', 1, 'web-v001', 'x')")  # fmt: skip
        db.executemany(
            "INSERT INTO servers (name, fleet, generation, image_tag, status, created_at)"
            " VALUES (?, 'web', 1, 'web-v001', 'serving', 'x')",
            [(name,) for name in names],
        )

"""A schedule's runs in the store: the runs `phoenix schedule run` started carry its name
(runs.schedule), so a drift scan (a run of no single fleet) is found as well as a rebuild."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from phoenix.state import RunKind, Store


@dataclass(frozen=True, kw_only=True)
class LastRun:
    id: int
    kind: str
    status: str  # a RunStatus: running, succeeded, rolled_back, interrupted
    started_at: str
    finished_at: str | None
    seconds: float | None  # None while it runs


def newest_id(store: Store) -> int:
    """The id of the newest run of any kind (0 when there is none)."""
    return int(store.rows("SELECT COALESCE(MAX(id), 0) AS id FROM runs")[0]["id"])


def mark(store: Store, name: str, kind: RunKind, after: int) -> None:
    """Mark as schedule `name`'s the runs of `kind` this process started since run `after`."""
    with store.transaction() as db:
        db.execute(
            "UPDATE runs SET schedule = ? WHERE id > ? AND pid = ? AND kind = ?",
            (name, after, os.getpid(), kind),
        )


def last(store: Store, name: str) -> LastRun | None:
    """The newest run schedule `name` started, if any."""
    rows = store.rows(
        "SELECT id, kind, status, started_at, finished_at FROM runs WHERE schedule = ?"
        " ORDER BY id DESC LIMIT 1",
        (name,),
    )
    if not rows:
        return None
    row = rows[0]
    return LastRun(
        id=int(row["id"]),
        kind=row["kind"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        seconds=_seconds(row["started_at"], row["finished_at"]),
    )


def _seconds(started: str, finished: str | None) -> float | None:
    if finished is None:
        return None
    delta = datetime.fromisoformat(finished) - datetime.fromisoformat(started)
    return round(delta.total_seconds(), 1)

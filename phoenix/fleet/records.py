"""Fleet records in the state store: fleets, generations, servers, and the runs on them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from phoenix.config import Severity
from phoenix.state import RunKind, RunStatus, Store, now


class ServerStatus(StrEnum):
    CREATING = "creating"  # recorded before Terraform creates it
    STARTING = "starting"  # exists; health gate not passed yet
    SERVING = "serving"  # in the load balancer
    DRAINING = "draining"  # taken out of rotation; in-flight requests finishing
    REMOVING = "removing"  # out of the load balancer; Terraform removes it next
    REMOVED = "removed"
    FAILED = "failed"  # never served: it failed its health gate or its run was cut short


LIVE = (
    ServerStatus.CREATING,
    ServerStatus.STARTING,
    ServerStatus.SERVING,
    ServerStatus.DRAINING,
    ServerStatus.REMOVING,
)


@dataclass(frozen=True, kw_only=True)
class ServerRecord:
    name: str
    fleet: str
    generation: int
    address: str | None
    image_tag: str
    host_key: str | None
    status: ServerStatus
    created_at: str
    removed_at: str | None
    settled: str | None = None  # its first start, as its host saw it (see facts.files)


@dataclass(frozen=True, kw_only=True)
class LastScan:
    """What the latest recorded drift scan of one server found (nothing: it was clean)."""

    at: str
    findings: list[tuple[str, str, Severity]]  # (kind, subject, severity)

    def at_least(self, severity: Severity) -> list[tuple[str, str, Severity]]:
        return [f for f in self.findings if f[2].rank >= severity.rank]


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    id: int
    fleet: str | None
    kind: RunKind
    status: RunStatus
    started_at: str
    finished_at: str | None
    pid: int
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Records:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- fleets and generations ---------------------------------------------------------------

    def ensure_fleet(self, fleet: str, config: dict[str, Any]) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO fleets (name, created_at, config_json) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET config_json = excluded.config_json",
                (fleet, now(), json.dumps(config, default=str)),
            )

    def new_generation(self, fleet: str, image_tag: str) -> int:
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(number), 0) FROM generations WHERE fleet = ?", (fleet,)
            ).fetchone()
            number = int(row[0]) + 1
            db.execute(
                "INSERT INTO generations (fleet, number, image_tag, created_at)"
                " VALUES (?, ?, ?, ?)",
                (fleet, number, image_tag, now()),
            )
        return number

    # -- servers ------------------------------------------------------------------------------

    def servers(self, fleet: str, live: bool = True) -> list[ServerRecord]:
        sql = "SELECT * FROM servers WHERE fleet = ?"
        if live:
            sql += " AND status IN (%s)" % ",".join("?" * len(LIVE))  # noqa: UP031
        params = (fleet, *LIVE) if live else (fleet,)
        return [_server(r) for r in self.store.rows(sql + " ORDER BY generation, name", params)]

    def add_servers(self, fleet: str, generation: int, image_tag: str, names: list[str]) -> None:
        with self.store.transaction() as db:
            db.executemany(
                "INSERT INTO servers (name, fleet, generation, image_tag, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(n, fleet, generation, image_tag, ServerStatus.CREATING, now()) for n in names],
            )

    def set_status(self, names: list[str], status: ServerStatus) -> None:
        removed_at = now() if status in (ServerStatus.REMOVED, ServerStatus.FAILED) else None
        with self.store.transaction() as db:
            db.executemany(
                "UPDATE servers SET status = ?, removed_at = COALESCE(?, removed_at)"
                " WHERE name = ?",
                [(status, removed_at, n) for n in names],
            )

    def set_identity(
        self, name: str, address: str | None, host_key: str | None, settled: str | None = None
    ) -> None:
        with self.store.transaction() as db:
            db.execute(
                "UPDATE servers SET address = ?, host_key = ?, settled = ? WHERE name = ?",
                (address, host_key, settled, name),
            )

    def last_scans(self, names: list[str]) -> dict[str, LastScan]:
        """The latest recorded drift scan of each of `names` that was ever scanned.

        A scan stamps its findings (`found_at`) and the hash cache of every server it read
        (`updated_at`) with the same time: a cache newer than a server's newest findings is a
        later scan that found nothing. A server that could not be scanned has a `scan.failed`
        finding (high) from that scan.
        """
        scans: dict[str, LastScan] = {}
        for name in names:
            found = self.store.rows(
                "SELECT MAX(found_at) AS at FROM findings WHERE server = ?", (name,)
            )[0]["at"]
            cached = self.store.rows(
                "SELECT updated_at AS at FROM hash_caches WHERE server = ?", (name,)
            )
            clean = cached[0]["at"] if cached else None
            if clean is not None and (found is None or clean > found):
                scans[name] = LastScan(at=clean, findings=[])
            elif found is not None:
                rows = self.store.rows(
                    "SELECT kind, subject, severity FROM findings WHERE server = ? AND found_at = ?"
                    " ORDER BY id",
                    (name, found),
                )
                findings = [(r["kind"], r["subject"], Severity(r["severity"])) for r in rows]
                scans[name] = LastScan(at=found, findings=findings)
        return scans

    # -- runs ---------------------------------------------------------------------------------

    def runs(self, fleet: str | None = None, limit: int = 50) -> list[RunRecord]:
        sql = "SELECT * FROM runs" + (" WHERE fleet = ?" if fleet else "")
        rows = self.store.rows(
            sql + " ORDER BY id DESC LIMIT ?", (fleet, limit) if fleet else (limit,)
        )
        return [_run(r) for r in rows]

    def unfinished(self, fleet: str) -> list[RunRecord]:
        return [r for r in self.runs(fleet, limit=1000) if r.status is RunStatus.RUNNING]

    def set_run_detail(self, run_id: int, detail: dict[str, Any]) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE runs SET detail_json = ? WHERE id = ?", (json.dumps(detail), run_id))

    def events(self, run_id: int) -> list[dict[str, Any]]:
        return self.store.rows(
            "SELECT at, step, kind, detail FROM events WHERE run_id = ? ORDER BY id", (run_id,)
        )


def _server(row: dict[str, Any]) -> ServerRecord:
    return ServerRecord(
        name=row["name"],
        fleet=row["fleet"],
        generation=int(row["generation"]),
        address=row["address"],
        image_tag=row["image_tag"],
        host_key=row["host_key"],
        status=ServerStatus(row["status"]),
        created_at=row["created_at"],
        removed_at=row["removed_at"],
        settled=row["settled"],
    )


def _run(row: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=int(row["id"]),
        fleet=row["fleet"],
        kind=RunKind(row["kind"]),
        status=RunStatus(row["status"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        pid=int(row["pid"]),
        detail=json.loads(row["detail_json"] or "{}"),
    )

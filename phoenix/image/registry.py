"""The image registry: every bake of every image, versioned, in the state store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from phoenix.errors import NotFound, Refused
from phoenix.lab import project
from phoenix.state import Store, now
from phoenix.workspace import Workspace


class Status(StrEnum):
    BUILDING = "building"  # a bake is under way (or was cut short: see `settle_interrupted`)
    READY = "ready"
    FAILED = "failed"
    REVOKED = "revoked"


@dataclass(frozen=True, kw_only=True)
class ImageRecord:
    name: str
    version: int
    tag: str
    status: Status
    provider_id: str | None
    template_sha256: str
    inputs: dict[str, str]
    parent: str | None
    parent_id: str | None
    packer_version: str | None
    built_at: str | None
    log_path: str | None
    error: str | None
    baseline: dict[str, Any] | None


def tag_of(name: str, version: int) -> str:
    return f"{name}-v{version:03d}"


def name_of(tag: str) -> str:
    """The image name in a tag (`web` in `web-v003`): `tag_of` undone."""
    return tag.rpartition("-v")[0] or tag


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self, name: str | None = None) -> list[ImageRecord]:
        sql = "SELECT * FROM images" + (" WHERE name = ?" if name else "")
        rows = self.store.rows(sql + " ORDER BY name, version", (name,) if name else ())
        return [_record(r) for r in rows]

    def get(self, tag: str) -> ImageRecord:
        rows = self.store.rows("SELECT * FROM images WHERE tag = ?", (tag,))
        if not rows:
            raise self._not_found(tag)
        return _record(rows[0])

    def provider_id(self, tag: str) -> str | None:
        """The provider's own id of image `tag` recorded at bake; its record alone, not its
        baseline, is read (a rollout asks it of every server)."""
        rows = self.store.rows("SELECT provider_id FROM images WHERE tag = ?", (tag,))
        if not rows:
            raise self._not_found(tag)
        found = rows[0]["provider_id"]
        return str(found) if found else None

    def _not_found(self, tag: str) -> NotFound:
        tags = self.store.rows("SELECT tag FROM images ORDER BY name, version")
        known = ", ".join(str(r["tag"]) for r in tags) or "none yet"
        return NotFound(f"no image {tag}", hint=f"known images: {known}")

    def latest(self, name: str, status: Status | None = Status.READY) -> ImageRecord | None:
        """The newest version of image `name` with `status` (any: None). One row is read: each
        holds its baseline, thousands of files."""
        where, args = (
            ("name = ?", (name,))
            if status is None
            else ("name = ? AND status = ?", (name, status.value))
        )
        rows = self.store.rows(
            f"SELECT * FROM images WHERE {where} ORDER BY version DESC LIMIT 1", args
        )
        return _record(rows[0]) if rows else None

    def begin(
        self,
        name: str,
        template_sha256: str,
        inputs: dict[str, str],
        parent: str | None,
        parent_id: str,
        log_dir: Path,
    ) -> ImageRecord:
        """Record a bake before it starts, under the next version number."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM images WHERE name = ?", (name,)
            ).fetchone()
            version = int(row[0]) + 1
            log_path = str(log_dir / f"bake-{tag_of(name, version)}.log")
            db.execute(
                "INSERT INTO images (name, version, tag, status, template_sha256, inputs_json,"
                " parent, parent_id, log_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name, version, tag_of(name, version), Status.BUILDING, template_sha256,
                    json.dumps(inputs, sort_keys=True), parent, parent_id, log_path,
                ),
            )  # fmt: skip
        return self.get(tag_of(name, version))

    def ready(
        self,
        tag: str,
        provider_id: str,
        packer_version: str,
        baseline: dict[str, Any],
        writes_key: bool = False,
    ) -> ImageRecord:
        """Image `tag` is baked: `writes_key` if its smoke server showed it writes the operator's
        key from its config (LXD.writes_key)."""
        self._update(
            tag,
            status=Status.READY,
            provider_id=provider_id,
            packer_version=packer_version,
            built_at=now(),
            baseline_json=json.dumps(baseline),
            writes_key=int(writes_key),
        )
        return self.get(tag)

    def writes_key(self, tag: str) -> bool:
        """Whether the servers of image `tag` get the operator's key from their config (see
        `ready`); False for an image baked before phoenix asked, or unknown here."""
        rows = self.store.rows("SELECT writes_key FROM images WHERE tag = ?", (tag,))
        return bool(rows and rows[0]["writes_key"])

    def keep_listings(self, tag: str, stored: bytes) -> None:
        """Keep the smoke scan of image `tag` (a compressed ScanCache): its listings by root."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO image_listings (tag, listings) VALUES (?, ?)", (tag, stored)
            )

    def listings(self, tag: str) -> bytes | None:
        """The smoke scan kept for image `tag`; None if none was (an image baked before)."""
        rows = self.store.rows("SELECT listings FROM image_listings WHERE tag = ?", (tag,))
        return bytes(rows[0]["listings"]) if rows else None

    def failed(self, tag: str, error: str) -> None:
        self._update(tag, status=Status.FAILED, error=error, built_at=now())

    def revoke(self, tag: str) -> ImageRecord:
        self._update(tag, status=Status.REVOKED)
        return self.get(tag)

    def delete(self, tag: str) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM images WHERE tag = ?", (tag,))

    def servers_using(self) -> dict[str, int]:
        """How many live servers run each image tag."""
        rows = self.store.rows(
            "SELECT image_tag, COUNT(*) AS n FROM servers WHERE removed_at IS NULL"
            " GROUP BY image_tag",
            (),
        )
        return {r["image_tag"]: int(r["n"]) for r in rows}

    def prunable(self, keep: int, name: str | None = None) -> list[ImageRecord]:
        """Images beyond the newest `keep` ready ones of each name, never one in use.

        In use: a live server runs it, or another kept image was baked on it.
        """
        records = self.all(name)
        used = self.servers_using()
        parents = {r.parent for r in self.all() if r.parent}
        doomed: list[ImageRecord] = []
        for image_name in sorted({r.name for r in records}):
            mine = [r for r in records if r.name == image_name]
            ready = [r for r in mine if r.status is Status.READY][-keep:] if keep else []
            doomed += [
                r for r in mine
                if r not in ready and r.status is not Status.BUILDING
                and not used.get(r.tag) and r.tag not in parents
            ]  # fmt: skip
        return doomed

    def interrupted(self) -> list[ImageRecord]:
        """Bakes recorded as under way; the caller knows none is running (it holds the lock)."""
        rows = self.store.rows("SELECT * FROM images WHERE status = ?", (Status.BUILDING.value,))
        return [_record(r) for r in rows]

    def _update(self, tag: str, **columns: Any) -> None:
        assignments = ", ".join(f"{column} = ?" for column in columns)
        with self.store.transaction() as db:
            db.execute(f"UPDATE images SET {assignments} WHERE tag = ?", (*columns.values(), tag))


def _record(row: dict[str, Any]) -> ImageRecord:
    return ImageRecord(
        name=row["name"],
        version=int(row["version"]),
        tag=row["tag"],
        status=Status(row["status"]),
        provider_id=row["provider_id"],
        template_sha256=row["template_sha256"],
        inputs=json.loads(row["inputs_json"] or "{}"),
        parent=row["parent"],
        parent_id=row["parent_id"],
        packer_version=row["packer_version"],
        built_at=row["built_at"],
        log_path=row["log_path"],
        error=row["error"],
        baseline=json.loads(row["baseline_json"]) if row["baseline_json"] else None,
    )


@dataclass(frozen=True)
class ImageView:
    """An image as the operator sees it: its record, who uses it, where it came from."""

    record: ImageRecord
    in_use: int
    ancestry: list[str]  # from this image up to the lab's base image

    def as_dict(self) -> dict[str, Any]:
        r = self.record
        baseline = r.baseline or {}
        return {
            "tag": r.tag,
            "name": r.name,
            "version": r.version,
            "status": r.status.value,
            "provider_id": r.provider_id,
            "built_at": r.built_at,
            "in_use": self.in_use,
            "ancestry": self.ancestry,
            "packer_version": r.packer_version,
            "log": r.log_path,
            "error": r.error,
            "inputs": r.inputs,
            "baseline": {k: len(v) for k, v in baseline.items() if isinstance(v, dict)},
        }


class Catalog:
    """The registry together with the provider's image store (LXD here)."""

    def __init__(self, registry: Registry, base_image: str, delete_image: Callable[[str], None]):
        self.registry = registry
        self.base_image = base_image
        self.delete_image = delete_image

    def views(self, name: str | None = None) -> list[ImageView]:
        used = self.registry.servers_using()
        return [
            ImageView(r, used.get(r.tag, 0), self._ancestry(r)) for r in self.registry.all(name)
        ]

    def view(self, tag: str) -> ImageView:
        record = self.registry.get(tag)
        return ImageView(record, self.registry.servers_using().get(tag, 0), self._ancestry(record))

    def revoke(self, tag: str) -> ImageView:
        record = self.registry.get(tag)
        if record.status is Status.BUILDING:
            raise Refused(f"{tag} is still being baked", hint="revoke it once the bake ends")
        self.registry.revoke(tag)
        return self.view(tag)

    def prune(self, keep: int, name: str | None = None) -> list[str]:
        if keep < 0:
            raise Refused(f"--keep {keep}: must be 0 or more")
        removed = []
        for record in self.registry.prunable(keep, name):
            if record.provider_id:
                self.delete_image(record.provider_id)
            self.registry.delete(record.tag)
            removed.append(record.tag)
        return removed

    def _ancestry(self, record: ImageRecord) -> list[str]:
        chain = [record.tag]
        while record.parent:
            record = self.registry.get(record.parent)
            chain.append(record.tag)
        return [*chain, self.base_image]


@contextmanager
def catalog(ws: Workspace) -> Iterator[Catalog]:
    """The workspace's image catalog, over its state store and the lab's LXD."""
    lxd = project.of_workspace(ws).lxd(ws.config.timeouts.lxd)
    with Store.open(ws.home) as store:
        yield Catalog(Registry(store), ws.config.lab.base_image, lxd.delete_image)

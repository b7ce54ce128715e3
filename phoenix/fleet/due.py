"""Which serving servers of a fleet are due for replacement, and why: the nightly policy.

Pure: the servers, their images and their last drift scans are given. A server is due when it
is older than the fleet's `max_age`, built from a revoked image, built from an image older than
the newest ready one of the fleet's image, or drifted at or above the fleet's `replace_on` in its
last recorded scan. A server fresh from the newest image, undrifted, is never due: a fleet
rebuilt by hand in the afternoon is not replaced again that night.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from phoenix import ages
from phoenix.config import FleetConfig
from phoenix.fleet.records import LastScan, ServerRecord
from phoenix.image.registry import ImageRecord, Status


@dataclass(frozen=True)
class Due:
    server: str
    reasons: list[str]


def due_servers(
    cfg: FleetConfig,
    serving: Sequence[ServerRecord],
    images: Mapping[str, ImageRecord],
    newest: ImageRecord | None,
    scans: Mapping[str, LastScan],
    now: datetime,
) -> list[Due]:
    """The due servers among `serving`, in their order, each with its reasons. `images`: the
    image of each server's tag; `newest`: the newest ready image of the fleet's image name."""
    found = []
    for server in serving:
        reasons = [
            *_age(cfg, server, now),
            *_image(server, images.get(server.image_tag), newest),
            *_drift(cfg, scans.get(server.name)),
        ]
        if reasons:
            found.append(Due(server.name, reasons))
    return found


def _age(cfg: FleetConfig, server: ServerRecord, now: datetime) -> list[str]:
    if cfg.max_age is None:
        return []
    limit = ages.parse_age(cfg.max_age, "max_age")
    if now - datetime.fromisoformat(server.created_at) <= limit:
        return []
    return [f"older than max_age {cfg.max_age} (created {ages.ago(server.created_at, now)})"]


def _image(
    server: ServerRecord, image: ImageRecord | None, newest: ImageRecord | None
) -> list[str]:
    if image is not None and image.status is Status.REVOKED:
        return [f"built from revoked image {server.image_tag}"]
    if image is None or newest is None:
        return []
    if image.name != newest.name:
        return [f"built from {server.image_tag}, not from the fleet's image {newest.name}"]
    if image.version < newest.version:
        return [f"built from {server.image_tag}, older than the newest ready {newest.tag}"]
    return []


def _drift(cfg: FleetConfig, scan: LastScan | None) -> list[str]:
    if cfg.replace_on is None or scan is None:
        return []
    over = scan.at_least(cfg.replace_on)
    if not over:
        return []
    worst = max(severity.rank for _, _, severity in over)
    kinds = ", ".join(sorted({kind for kind, _, _ in over}))
    level = next(s for _, _, s in over if s.rank == worst)
    return [
        f"drifted: {len(over)} finding(s) at or above {cfg.replace_on} (worst {level}: {kinds})"
        f" in its scan of {scan.at[:16].replace('T', ' ')}"
    ]

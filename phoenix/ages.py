"""Ages of things, for people: '3m ago', '2d ago'."""

from __future__ import annotations

from datetime import UTC, datetime


def seconds_since(iso: str, now: datetime | None = None) -> float:
    then = datetime.fromisoformat(iso)
    return ((now or datetime.now(UTC)) - then).total_seconds()


def ago(iso: str | None, now: datetime | None = None) -> str:
    if not iso:
        return "-"
    seconds = max(0.0, seconds_since(iso, now))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"

"""Ages of things, for people: '3m ago', '2d ago'."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from phoenix.errors import Refused


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


def parse_age(text: str, option: str) -> timedelta:
    """`90m`, `24h`, `7d` (or `30s`) as a timedelta; Refused naming `option` otherwise."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match:
        raise Refused(f"{option} {text!r}: give a number and a unit, like 90m, 24h or 7d")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return timedelta(seconds=int(match.group(1)) * seconds)

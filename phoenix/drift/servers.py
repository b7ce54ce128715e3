"""The servers themselves as findings: what Terraform's refresh found changed outside phoenix."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from phoenix.drift.diff import Finding, Rules, finding, ranked

if TYPE_CHECKING:
    from phoenix.fleet.terraform.drift import ResourceDrift

RUNNING = "Running"


SETTINGS = ("config", "limits")  # maps of settings: one finding per key that changed


def server_findings(drifts: Iterable[ResourceDrift], rules: Rules = Rules()) -> list[Finding]:
    """Findings for servers deleted, stopped or reconfigured outside phoenix, sorted like diff's.

    Subjects: `NAME` when the server is gone or stopped, `NAME:KEY` for a setting (`limits.cpu`,
    `security.nesting`, `profiles`, ...). Rules of the `server` area leave subjects out.
    """
    found: list[Finding] = []
    for drift in drifts:
        if drift.action == "delete":
            found.append(finding("server.missing", drift.server, drift.before.get("status")))
            continue
        found += _status(drift) + _settings(drift)
    return ranked(f for f in found if not rules.ignores("server", f.subject))


def _status(drift: ResourceDrift) -> list[Finding]:
    """Stopped (or frozen, ...) outside phoenix. Started again is the way back, not drift."""
    now = drift.after.get("status")
    if now is None or now == RUNNING:
        return []
    return [finding("server.stopped", drift.server, drift.before.get("status"), now)]


def _settings(drift: ResourceDrift) -> list[Finding]:
    found: list[Finding] = []
    for attr in sorted((drift.before.keys() | drift.after.keys()) - {"status"}):
        was, now = drift.before.get(attr), drift.after.get(attr)
        if attr in SETTINGS and isinstance(was or {}, dict) and isinstance(now or {}, dict):
            found += _setting_keys(drift.server, attr, was or {}, now or {})
        elif was != now:
            found.append(
                finding("server.config", f"{drift.server}:{attr}", _plain(was), _plain(now))
            )
    return found


def _setting_keys(
    server: str, attr: str, was: Mapping[str, Any], now: Mapping[str, Any]
) -> list[Finding]:
    prefix = "limits." if attr == "limits" else ""
    return [
        finding("server.config", f"{server}:{prefix}{key}", was.get(key), now.get(key))
        for key in sorted(was.keys() | now.keys())
        if was.get(key) != now.get(key)
    ]


def _plain(value: Any) -> str | None:
    """A watched attribute as text: scalars as they are, lists and maps as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))

"""Remedies for drift: a drifted server is replaced through the rollout, never patched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from phoenix import fleet
from phoenix.drift import at_least
from phoenix.errors import ExitCode
from phoenix.events import Emit, discard
from phoenix.rollout import Options, Result
from phoenix.scan import CLEAN, DRIFTED, UNREACHABLE, UNTRUSTED, ScanReport
from phoenix.workspace import Workspace


def to_replace(report: ScanReport) -> dict[str, list[str]]:
    """Fleet -> the servers to replace: those with findings at or above the report's `fail_on`
    (a stopped or deleted server has a server.* finding), and the untrusted ones (their host key
    changed). A server merely unreachable is left: that may pass."""
    chosen: dict[str, list[str]] = {}
    for s in report.servers:
        if s.status == UNTRUSTED or at_least(s.findings, report.fail_on):
            chosen.setdefault(s.fleet, []).append(s.name)
    return chosen


def replace(
    ws: Workspace,
    report: ScanReport,
    chosen: Mapping[str, Sequence[str]],
    emit: Emit = discard,
) -> list[Result]:
    """Rebuild exactly the `chosen` servers of each fleet from its current image. The servers
    the `report`'s scan read archived their drift then: the rebuild does not scan them again
    (it tries the others, and warns of what it cannot archive)."""
    read = [s.name for s in report.servers if s.status in (CLEAN, DRIFTED)]
    return [
        fleet.run(ws, name, "rebuild", Options(only=tuple(servers)), emit, scanned=read)
        for name, servers in chosen.items()
    ]


def exit_code(report: ScanReport, outcomes: Sequence[Result]) -> ExitCode:
    """0 when every drifted server was replaced; 1 when a replacement rolled back; 2 when some
    server could not be scanned and was not replaced (it may still hold drift)."""
    replaced = {name for o in outcomes for name in o.removed}
    unscanned = [s for s in report.servers if s.status == UNREACHABLE and s.name not in replaced]
    if report.problems or unscanned:
        return ExitCode.REFUSED
    if any(o.status == "rolled_back" for o in outcomes):
        return ExitCode.FAILED
    return ExitCode.OK

"""The canary judgement: did a new batch serve its observation window as well as the old servers?

Two `show stat` snapshots (Counters) taken at the start and the end of the window give each
server's `Window`: what it did in between. `judge` compares each new server with the old servers
pooled together (their counts summed: a busy server weighs more than an idle one), within the
margins of `Limits`. When the old servers took too little traffic to compare with (a first
deploy, a fleet of one), new servers are held to absolute limits instead.

Definitions, per server and window:
- requests: HTTP responses the server gave (hrsp_1xx ... hrsp_other), whatever their status.
- attempts: the requests sent to the server (stot), answered or not; at least requests +
  connection errors (econ). A server (or the pooled old servers) with fewer attempts than
  `min_requests` is not judged.
- error_rate: the attempts that got no good answer (a 5xx, no answer, or an answer HAProxy
  replayed on another server: `retry-on 500 502 503 504` sends a bad answer to a GET elsewhere
  and counts it in the server's wretr, not its hrsp_5xx) / attempts.
- conn_error_rate: (econ + eresp) / attempts: failed connections and failed responses (which
  include aborts by the server), capped at 1.
- rtime_ms: the larger of HAProxy's `rtime` (time to the answer's headers) and `ttime` (the
  whole request, body included: a server that sends its page slowly) at the end of the window,
  averages over the
  server's last 1024 requests: not limited to the window, but a new server has no older ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from phoenix.config import CanaryConfig
from phoenix.fleet.haproxy.runtime import RESPONSE_CLASSES, Counters

OLD_SERVERS = "old servers"
ABSOLUTE_LIMITS = "absolute limits"


@dataclass(frozen=True, kw_only=True)
class Window:
    """What one server (or several, pooled) did during an observation window."""

    requests: int = 0
    errors_5xx: int = 0
    conn_errors: int = 0
    resp_errors: int = 0
    retries: int = 0
    redispatches: int = 0
    rtime_ms: float = 0.0
    sessions: int = 0

    @property
    def attempts(self) -> int:
        """Requests sent to the server: at least those answered plus connections that failed."""
        return max(self.sessions, self.requests + self.conn_errors)

    @property
    def error_rate(self) -> float:
        """The attempts answered badly: 5xx, or replayed elsewhere. Connections that failed and
        answers cut short are the connection-error rate's, not counted twice."""
        if not self.attempts:
            return 0.0
        unanswered = self.attempts - self.requests - self.conn_errors  # replayed, or cut short
        bad = self.errors_5xx + max(0, unanswered - self.resp_errors)
        return min(1.0, bad / self.attempts)

    @property
    def conn_error_rate(self) -> float:
        if not self.attempts:
            return 0.0
        return min(1.0, (self.conn_errors + self.resp_errors) / self.attempts)


def window(before: Counters | None, after: Counters) -> Window:
    """The difference between two snapshots of one server's counters.

    A server absent from the first snapshot (None) counts from zero. A counter that went down
    means the server was deleted and added again in between: its counters restarted, so `after`
    alone is the window.
    """
    start = before if before is not None and not _went_down(before, after) else Counters()
    return Window(
        requests=after.total - start.total,
        errors_5xx=after.responded("5xx") - start.responded("5xx"),
        conn_errors=after.conn_errors - start.conn_errors,
        resp_errors=after.resp_errors - start.resp_errors,
        retries=after.retries - start.retries,
        redispatches=after.redispatches - start.redispatches,
        rtime_ms=float(max(after.rtime_ms, after.ttime_ms)),
        sessions=after.sessions - start.sessions,
    )


def windows(
    before: Mapping[str, Counters],
    after: Mapping[str, Counters],
    names: Iterable[str] | None = None,
) -> dict[str, Window]:
    """The window of every server in the `after` snapshot, or of those of `names` in it."""
    chosen = after if names is None else [n for n in names if n in after]
    return {name: window(before.get(name), after[name]) for name in chosen}


def _went_down(before: Counters, after: Counters) -> bool:
    pairs = [(before.responded(c), after.responded(c)) for c in RESPONSE_CLASSES] + [
        (before.conn_errors, after.conn_errors),
        (before.resp_errors, after.resp_errors),
        (before.retries, after.retries),
        (before.redispatches, after.redispatches),
        (before.sessions, after.sessions),
    ]
    return any(new < old for old, new in pairs)


def pool(servers: Iterable[Window]) -> Window:
    """Several servers' windows as one: counts summed, response times weighted by requests."""
    listed = list(servers)
    requests = sum(w.requests for w in listed)
    weighted = sum(w.rtime_ms * w.requests for w in listed)
    return Window(
        requests=requests,
        errors_5xx=sum(w.errors_5xx for w in listed),
        conn_errors=sum(w.conn_errors for w in listed),
        resp_errors=sum(w.resp_errors for w in listed),
        retries=sum(w.retries for w in listed),
        redispatches=sum(w.redispatches for w in listed),
        rtime_ms=weighted / requests if requests else 0.0,
        sessions=sum(w.sessions for w in listed),
    )


# The thresholds of the judgement: the fleet's [fleets.NAME.canary] (see CanaryConfig).
Limits = CanaryConfig


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """One new server's window, and why it failed (empty `reasons`: it did not)."""

    name: str
    requests: int
    attempts: int
    error_rate: float
    conn_error_rate: float
    rtime_ms: float
    reasons: tuple[str, ...] = ()
    insufficient: bool = False  # too little traffic to judge: neither passed nor failed

    @property
    def failed(self) -> bool:
        return bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requests": self.requests,
            "attempts": self.attempts,
            "error_rate": round(self.error_rate, 4),
            "conn_error_rate": round(self.conn_error_rate, 4),
            "rtime_ms": round(self.rtime_ms, 1),
            "failed": self.failed,
            "insufficient": self.insufficient,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The judgement of a batch: passed unless a new server failed."""

    baseline: str  # OLD_SERVERS or ABSOLUTE_LIMITS
    old: Window  # the old servers pooled
    judgements: tuple[Judgement, ...]
    limits: Limits

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[str]:
        return [j.name for j in self.judgements if j.failed]

    @property
    def insufficient(self) -> list[str]:
        return [j.name for j in self.judgements if j.insufficient]

    def summary(self) -> str:
        """One line for the operator, like "failed against the old servers (1000 requests):
        web-g2-1: errors 31.0% vs 0.2% on the old servers (margin 2.0%)"."""
        failures = [f"{j.name}: {', '.join(j.reasons)}" for j in self.judgements if j.failed]
        judged = [j.name for j in self.judgements if not j.insufficient]
        against = (
            f"against the old servers ({self.old.attempts} requests)"
            if self.baseline == OLD_SERVERS
            else f"against absolute limits (the old servers took {self.old.attempts} requests,"
            f" fewer than {self.limits.min_requests})"
        )
        if failures:
            line = f"failed {against}: {'; '.join(failures)}"
        elif judged:
            line = f"passed {against}: {', '.join(judged)}"
        else:
            line = "not judged"
        if self.insufficient:
            line += (
                f"; too little traffic to judge {', '.join(self.insufficient)}"
                f" (fewer than {self.limits.min_requests} requests)"
            )
        return line

    def as_dict(self) -> dict[str, Any]:
        """For --json and the run's history: plain JSON types."""
        return {
            "passed": self.passed,
            "baseline": self.baseline,
            "old": {
                "requests": self.old.requests,
                "attempts": self.old.attempts,
                "error_rate": round(self.old.error_rate, 4),
                "conn_error_rate": round(self.old.conn_error_rate, 4),
                "rtime_ms": round(self.old.rtime_ms, 1),
            },
            "servers": [j.as_dict() for j in self.judgements],
            "limits": self.limits.model_dump(),
            "summary": self.summary(),
        }


def judge(new: Mapping[str, Window], old: Mapping[str, Window], limits: Limits) -> Verdict:
    """Judge every new server's window against the old servers' pooled, or absolute limits."""
    baseline = pool(w for w in old.values() if w.attempts > 0)
    compared = baseline.attempts >= limits.min_requests
    judgements = tuple(
        _judge(name, w, baseline if compared else None, limits) for name, w in sorted(new.items())
    )
    return Verdict(
        baseline=OLD_SERVERS if compared else ABSOLUTE_LIMITS,
        old=baseline,
        judgements=judgements,
        limits=limits,
    )


def _judge(name: str, server: Window, old: Window | None, limits: Limits) -> Judgement:
    insufficient = server.attempts < limits.min_requests
    reasons = () if insufficient else tuple(_reasons(server, old, limits))
    return Judgement(
        name=name,
        requests=server.requests,
        attempts=server.attempts,
        error_rate=server.error_rate,
        conn_error_rate=server.conn_error_rate,
        rtime_ms=server.rtime_ms,
        reasons=reasons,
        insufficient=insufficient,
    )


def _reasons(server: Window, old: Window | None, limits: Limits) -> list[str]:
    if old is None:
        return _absolute_reasons(server, limits)
    reasons = []
    if server.error_rate > old.error_rate + limits.error_margin:
        reasons.append(
            f"errors {server.error_rate:.1%} vs {old.error_rate:.1%} on the old servers"
            f" (margin {limits.error_margin:.1%})"
        )
    if server.conn_error_rate > old.conn_error_rate + limits.conn_error_margin:
        reasons.append(
            f"connection errors {server.conn_error_rate:.1%} vs {old.conn_error_rate:.1%}"
            f" on the old servers (margin {limits.conn_error_margin:.1%})"
        )
    if server.requests and old.requests:
        slowest = max(old.rtime_ms * limits.latency_factor, limits.latency_floor_ms)
        if server.rtime_ms > slowest:
            reasons.append(
                f"response time {server.rtime_ms:.0f} ms vs {old.rtime_ms:.0f} ms on the old"
                f" servers (limit {slowest:.0f} ms: {limits.latency_factor:g}x, at least"
                f" {limits.latency_floor_ms:.0f} ms)"
            )
    elif server.requests:
        reasons += _slow(server, limits)
    return reasons


def _absolute_reasons(server: Window, limits: Limits) -> list[str]:
    reasons = []
    if server.error_rate > limits.max_error_rate:
        reasons.append(
            f"errors {server.error_rate:.1%} above the limit {limits.max_error_rate:.1%}"
        )
    if server.conn_error_rate > limits.max_conn_error_rate:
        reasons.append(
            f"connection errors {server.conn_error_rate:.1%} above the limit"
            f" {limits.max_conn_error_rate:.1%}"
        )
    if server.requests:
        reasons += _slow(server, limits)
    return reasons


def _slow(server: Window, limits: Limits) -> list[str]:
    if server.rtime_ms > limits.max_response_ms:
        return [
            f"response time {server.rtime_ms:.0f} ms above the limit"
            f" {limits.max_response_ms:.0f} ms"
        ]
    return []

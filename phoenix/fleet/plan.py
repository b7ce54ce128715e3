"""What a deploy or a rebuild will do: options in, batches out. Pure: no adapter, no store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from phoenix.ages import parse_age
from phoenix.config import FleetConfig, Strategy
from phoenix.errors import Refused
from phoenix.fleet.records import RunRecord, ServerRecord, ServerStatus
from phoenix.state import RunKind, RunStatus


@dataclass(frozen=True, kw_only=True)
class Options:
    image: str | None = None
    older_than: str | None = None
    only: tuple[str, ...] = ()
    strategy: str | None = None  # as the operator gave it: checked by make_plan
    batch: int | None = None


class RolloutStatus(StrEnum):
    """How a deploy, rebuild or destroy ended (a Result's status)."""

    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"  # a step failed; the servers serving before still serve
    NOTHING = "nothing"  # the plan was empty: no run


@dataclass(frozen=True)
class Batch:
    remove: list[str]
    add: int  # how many new servers


@dataclass(frozen=True, kw_only=True)
class Plan:
    fleet: str
    kind: RunKind  # deploy | rebuild | destroy
    image: str
    strategy: Strategy | None  # None: a destroy
    batches: list[Batch]
    resume_of: int | None = None
    note: str = ""

    @property
    def empty(self) -> bool:
        return not self.batches

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Result:
    plan: Plan
    run_id: int | None
    status: RolloutStatus
    reason: str = ""
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class ServerView:
    name: str
    address: str | None
    image: str
    generation: int
    created_at: str
    healthy: bool
    status: ServerStatus


@dataclass(frozen=True, kw_only=True)
class FleetStatus:
    fleet: str
    endpoint: str
    servers: list[ServerView]
    interrupted: list[RunRecord]

    def as_dict(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet,
            "endpoint": self.endpoint,
            "servers": [
                {k: v for k, v in asdict(s).items() if k != "status"} for s in self.servers
            ],
            "interrupted_runs": [r.id for r in self.interrupted],
        }


def make_plan(
    fleet: str,
    cfg: FleetConfig,
    kind: RunKind,
    opts: Options,
    image: str,
    serving: Sequence[ServerRecord],
    last_run: RunRecord | None,
) -> Plan:
    """The batches of a `kind` (deploy | rebuild) run on `fleet`, whose `serving` servers and
    last run are given; `image` is the tag to deploy."""
    batch = opts.batch if opts.batch is not None else cfg.batch
    if batch < 1:
        raise Refused(f"--batch {batch}: must be at least 1")
    strategy = _strategy(opts.strategy) if opts.strategy else cfg.strategy
    if kind is RunKind.DEPLOY:
        missing = cfg.size - len(serving)
        note = "" if missing > 0 else f"{fleet} already has {len(serving)} servers"
        batches = [Batch([], missing)] if missing > 0 else []
        return Plan(
            fleet=fleet, kind=kind, image=image, strategy=strategy, batches=batches, note=note
        )
    if not serving:
        raise Refused(f"fleet {fleet} has no servers", hint=f"run: phoenix deploy {fleet}")
    chosen, resume_of, note = select(fleet, serving, opts, last_run)
    size = len(chosen) if strategy is Strategy.BLUE_GREEN else batch
    batches = [
        Batch(chosen[i : i + size], len(chosen[i : i + size])) for i in range(0, len(chosen), size)
    ]
    return Plan(
        fleet=fleet,
        kind=kind,
        image=image,
        strategy=strategy,
        batches=batches,
        resume_of=resume_of,
        note=note,
    )


def _strategy(given: str) -> Strategy:
    try:
        return Strategy(given)
    except ValueError:
        allowed = " or ".join(Strategy)
        raise Refused(f"--strategy {given}: must be {allowed}") from None


def select(
    fleet: str, serving: Sequence[ServerRecord], opts: Options, last_run: RunRecord | None
) -> tuple[list[str], int | None, str]:
    """The servers a rebuild replaces, the interrupted run it finishes (if any), and why."""
    if opts.only:
        unknown = sorted(set(opts.only) - {s.name for s in serving})
        if unknown:
            names = ", ".join(s.name for s in serving)
            raise Refused(
                f"not servers of {fleet}: {', '.join(unknown)}",
                hint=f"its servers: {names}",
            )
        return [s.name for s in serving if s.name in opts.only], None, ""
    if opts.older_than:
        cutoff = datetime.now(UTC) - parse_age(opts.older_than, "--older-than")
        old = [s.name for s in serving if datetime.fromisoformat(s.created_at) < cutoff]
        return old, None, f"servers older than {opts.older_than}"
    last = last_run
    if last and last.kind is RunKind.REBUILD and last.status is RunStatus.INTERRUPTED:
        left = [s.name for s in serving if s.created_at < last.started_at]
        return left, last.id, f"finishing interrupted rebuild #{last.id}"
    return [s.name for s in serving], None, ""

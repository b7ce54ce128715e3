"""What a deploy or a rebuild will do: options in, batches out. Pure: no adapter, no store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from phoenix.ages import parse_age
from phoenix.config import FleetConfig, Strategy
from phoenix.errors import Refused
from phoenix.fleet.due import Due
from phoenix.fleet.records import RunRecord, ServerRecord, ServerStatus
from phoenix.state import RunKind, RunStatus


@dataclass(frozen=True, kw_only=True)
class Options:
    image: str | None = None
    older_than: str | None = None
    only: tuple[str, ...] = ()
    strategy: str | None = None  # as the operator gave it: checked by make_plan
    batch: int | None = None
    due: bool = False  # only the servers due for replacement (phoenix.fleet.due)
    observe: bool = True  # False: --no-observe, batches are not judged on live traffic


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
    reasons: dict[str, list[str]] = field(default_factory=dict)  # server -> why it goes
    observe: float | None = None  # seconds each batch takes live traffic before it is judged

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
    canary: list[dict[str, Any]] = field(default_factory=list)  # each window's verdict
    restored: int | None = None  # the run that put the old image back, after a rollback

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
    size: int  # the declared size

    @property
    def serving(self) -> int:
        return sum(1 for s in self.servers if s.status is ServerStatus.SERVING)

    @property
    def at_size(self) -> bool:
        return self.serving == self.size

    def as_dict(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet,
            "endpoint": self.endpoint,
            "servers": [
                {k: v for k, v in asdict(s).items() if k != "status"} for s in self.servers
            ],
            "interrupted_runs": [r.id for r in self.interrupted],
            "size": self.size,
            "serving": self.serving,
            "at_size": self.at_size,
        }


def make_plan(
    fleet: str,
    cfg: FleetConfig,
    kind: RunKind,
    opts: Options,
    image: str,
    serving: Sequence[ServerRecord],
    last_run: RunRecord | None,
    due: Sequence[Due] = (),
) -> Plan:
    """The batches of a `kind` (deploy | rebuild) run on `fleet`, whose `serving` servers and
    last run are given; `image` is the tag to deploy; `due`: the servers due for replacement
    (what `opts.due` replaces). Either run ends with the fleet at its size: a deploy tops it up
    or trims it; a rebuild adds the missing servers in its first batch or first removes those
    beyond the size (never serving fewer than the size; see `surplus`)."""
    batch = opts.batch if opts.batch is not None else cfg.batch
    if batch < 1:
        raise Refused(f"--batch {batch}: must be at least 1")
    strategy = _strategy(opts.strategy) if opts.strategy else cfg.strategy
    plan = Plan(fleet=fleet, kind=kind, image=image, strategy=strategy, batches=[])
    if kind is RunKind.DEPLOY:
        missing = cfg.size - len(serving)
        if missing > 0:
            return replace(plan, batches=[Batch([], missing)])
        if missing == 0:
            return replace(plan, note=f"{fleet} already has {len(serving)} servers")
        return _converged(plan, cfg, serving, [], {})
    if not serving:
        raise Refused(f"fleet {fleet} has no servers", hint=f"run: phoenix deploy {fleet}")
    if opts.due:
        if opts.only or opts.older_than:
            raise Refused(
                "--due chooses the servers itself: give it without --only or --older-than"
            )
        chosen = [d.server for d in due]
        reasons = {d.server: list(d.reasons) for d in due}
        plan = replace(plan, note=f"{len(chosen)} due" if chosen else "nothing due")
    else:
        chosen, resume_of, note = select(fleet, serving, opts, last_run)
        reasons = {}
        plan = replace(plan, resume_of=resume_of, note=note)
    return _converged(plan, cfg, serving, chosen, reasons, batch)


def _converged(
    plan: Plan,
    cfg: FleetConfig,
    serving: Sequence[ServerRecord],
    chosen: list[str],
    reasons: dict[str, list[str]],
    batch: int = 1,
) -> Plan:
    """`plan` replacing `chosen` in batches, and ending with the fleet at `cfg.size`: servers
    beyond it go first, in a batch of their own (chosen ones first, see `surplus`), without a
    replacement; servers missing join the first batch."""
    extra = len(serving) - cfg.size
    trimmed = surplus(serving, plan.image, chosen, extra) if extra > 0 else []
    kept = [n for n in chosen if n not in trimmed]
    size = max(1, len(kept)) if plan.strategy is Strategy.BLUE_GREEN else batch
    batches = [
        Batch(kept[i : i + size], len(kept[i : i + size])) for i in range(0, len(kept), size)
    ]
    if extra < 0:
        first = batches[0] if batches else Batch([], 0)
        batches[:1] = [Batch(first.remove, first.add - extra)]
    notes = [plan.note] if plan.note else []
    if trimmed:
        batches.insert(0, Batch(trimmed, 0))
        notes.append(f"{len(serving)} serving, size {cfg.size}: {extra} removed")
        beyond = f"beyond the fleet's size {cfg.size}"
        reasons = {**reasons, **{n: [*reasons.get(n, []), beyond] for n in trimmed}}
    elif extra < 0:
        notes.append(f"{len(serving)} serving, size {cfg.size}: {-extra} added")
    return replace(plan, batches=batches, reasons=reasons, note="; ".join(notes))


def surplus(
    serving: Sequence[ServerRecord], image: str, chosen: Sequence[str], count: int
) -> list[str]:
    """The `count` servers to remove so that the rest is the fleet's size: those chosen for
    replacement first, then the rest; within each, those not on `image` first, then the oldest."""

    def order(s: ServerRecord) -> tuple[bool, bool, str, str]:
        return (s.name not in chosen, s.image_tag == image, s.created_at, s.name)

    return [s.name for s in sorted(serving, key=order)][:count]


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

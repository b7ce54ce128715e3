"""The replacement cycle: new servers beside the old, health-gated, traffic shifted, old drained.

A rolling rebuild replaces `batch` servers at a time; blue-green is the same cycle with one batch
holding the whole fleet. Each step is written to the state store before it is taken, so a run
cut short (kill -9, Ctrl-C, a crash) is settled by the next phoenix run on that fleet: servers
that never served are removed, servers already serving stay, and a rebuild finishes the rest.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from phoenix.config import HealthCheck, Surge
from phoenix.errors import CanaryFailed, PhoenixError, Refused
from phoenix.events import Emit, StepOutput, discard, step
from phoenix.fleet.canary import judge, windows
from phoenix.fleet.due import Due, due_servers
from phoenix.fleet.plan import (
    FleetStatus,
    Options,
    Plan,
    Result,
    RolloutStatus,
    ServerView,
    make_plan,
)
from phoenix.fleet.ports import Infra, Provider, Traffic
from phoenix.fleet.records import Records, ServerRecord, ServerStatus
from phoenix.fleet.terraform.inputs import ServerSpec, ServerState
from phoenix.host import health, keys, ssh
from phoenix.image.registry import ImageRecord, Registry, Status
from phoenix.poll import ticks
from phoenix.state import RunKind, RunStatus, Store
from phoenix.workspace import Workspace

DRAIN_TIMEOUT = 30.0
OBSERVE_INTERVAL = 1.0  # seconds between two reads of HAProxy's counters in a window
MAX_AT_ONCE = 16  # provider calls (identities read, servers stopped) a run makes at once


class Fleet:
    """One fleet's servers, changed only through Terraform and the load balancer."""

    def __init__(
        self,
        ws: Workspace,
        store: Store,
        name: str,
        infra: Infra,
        traffic: Traffic,
        provider: Provider,
        emit: Emit = discard,
    ) -> None:
        self.ws, self.name, self.cfg = ws, name, ws.fleet(name)
        self.records, self.registry = Records(store), Registry(store)
        self.store = store
        self.infra, self.traffic, self.provider, self.emit = infra, traffic, provider, emit
        self.infra_states: dict[str, ServerState] = {}
        self.refreshed = False  # the first apply of this process reads every server; then not
        self._stopper: ThreadPoolExecutor | None = None  # a run's background stops (`_drain`)
        self._stopping: list[Future[None]] = []
        self.health: HealthCheck = ws.image(self.cfg.image).health.model_copy(
            update={"port": self.cfg.port}
        )

    # -- planning -----------------------------------------------------------------------------

    def plan(self, kind: RunKind, opts: Options = Options()) -> Plan:
        image = self._image(opts.image)
        serving = [s for s in self.records.servers(self.name) if s.status is ServerStatus.SERVING]
        last = next(iter(self.records.runs(self.name, limit=1)), None)
        found = self.due(serving) if opts.due and kind is RunKind.REBUILD else []
        plan = make_plan(self.name, self.cfg, kind, opts, image.tag, serving, last, found)
        seconds = self.cfg.observe_seconds
        if seconds is None or plan.empty:
            return plan
        if not opts.observe:
            return replace(plan, note=_join(plan.note, "observation skipped (--no-observe)"))
        return replace(plan, observe=float(seconds))

    def due(self, serving: Sequence[ServerRecord]) -> list[Due]:
        """The servers of `serving` due for replacement, with their reasons (phoenix.fleet.due)."""
        images = {tag: self.registry.get(tag) for tag in {s.image_tag for s in serving}}
        newest = self.registry.latest(self.cfg.image)
        scans = self.records.last_scans([s.name for s in serving])
        return due_servers(self.cfg, serving, images, newest, scans, datetime.now(UTC))

    def _image(self, tag: str | None) -> ImageRecord:
        if tag is None:
            latest = self.registry.latest(self.cfg.image)
            if latest is None:
                raise Refused(
                    f"image {self.cfg.image} has no ready version",
                    hint=f"run: phoenix image bake {self.cfg.image}",
                )
            return latest
        image = self.registry.get(tag)
        if image.status is not Status.READY:
            raise Refused(f"image {tag} is {image.status.value}: it cannot be deployed")
        return image

    # -- running ------------------------------------------------------------------------------

    def execute(self, plan: Plan, before_removing: Callable[[], object] = lambda: None) -> Result:
        """Carry out `plan`; `before_removing` is called once, before the first server leaves.
        No thread of the run outlives it."""
        try:
            return self._execute(plan, before_removing)
        finally:
            self._close_stopper()

    def _execute(self, plan: Plan, before_removing: Callable[[], object]) -> Result:
        if plan.empty:
            return Result(plan=plan, run_id=None, status=RolloutStatus.NOTHING, reason=plan.note)
        self.records.ensure_fleet(self.name, self.cfg.model_dump(mode="json"))
        run_id = self.store.start_run(self.name, plan.kind)
        self.records.set_run_detail(run_id, plan.as_dict())
        if plan.note:
            self._event(run_id, "plan", plan.note)
        self._ensure_traffic()
        serving = [s for s in self.records.servers(self.name) if s.status is ServerStatus.SERVING]
        previous = _most_common([s.image_tag for s in serving])
        verdicts: list[dict[str, Any]] = []
        adding = any(batch.add for batch in plan.batches)
        generation = self.records.new_generation(self.name, plan.image) if adding else 0
        added: list[str] = []
        removed: list[str] = []
        leaving: list[str] = []
        new = _new_names(self.name, generation, plan)
        ahead = self.cfg.surge is Surge.ALL and sum(1 for names in new if names) > 1
        try:
            for number, (batch, names) in enumerate(zip(plan.batches, new, strict=True), 1):
                self._event(run_id, f"batch {number}", _doing(number, new, ahead))
                if not ahead or number == 1:  # ahead: every new server in the first apply
                    creating = [n for batch_names in new for n in batch_names] if ahead else names
                    self.records.add_servers(self.name, generation, plan.image, creating)
                    if creating or leaving:
                        self._apply(run_id, exclude=leaving)
                    self.records.set_status(leaving, ServerStatus.REMOVED)
                    removed += leaving
                    leaving = []
                    # ahead: every new server checked and behind the balancer (weight 0: no
                    # traffic), so that each later batch only has to be given its weight
                    self._admit(run_id, creating)
                self._serve(run_id, names)
                added += names
                if plan.observe:
                    verdicts.append(self._observe(run_id, plan.observe, added, number))
                if number == 1:
                    before_removing()
                leaving += self._drain(run_id, batch.remove)  # destroyed by the next apply
            if leaving:
                self._apply(run_id, exclude=leaving)
                self.records.set_status(leaving, ServerStatus.REMOVED)
                removed += leaving
        except CanaryFailed as exc:
            self.records.set_run_detail(
                run_id, {**plan.as_dict(), "canary": [*verdicts, exc.verdict]}
            )
            self._event(run_id, "rollback", exc.message)
            self._withdraw(added)
            self._settle(run_id, RunStatus.ROLLED_BACK)
            restored = self._restore(run_id, previous)
            return Result(
                plan=plan,
                run_id=run_id,
                status=RolloutStatus.ROLLED_BACK,
                reason=exc.message,
                removed=removed + leaving + added,
                canary=[*verdicts, exc.verdict],
                restored=restored,
            )
        except PhoenixError as exc:
            self._event(run_id, "rollback", exc.message)
            self._settle(run_id, RunStatus.ROLLED_BACK)
            return Result(
                plan=plan,
                run_id=run_id,
                status=RolloutStatus.ROLLED_BACK,
                reason=exc.message,
                added=added,
                removed=removed + leaving,
                canary=verdicts,
            )
        except BaseException:
            self._settle(run_id, RunStatus.INTERRUPTED)
            raise
        if verdicts:
            self.records.set_run_detail(run_id, {**plan.as_dict(), "canary": verdicts})
        self.store.finish_run(run_id, RunStatus.SUCCEEDED)
        return Result(
            plan=plan,
            run_id=run_id,
            status=RolloutStatus.SUCCEEDED,
            added=added,
            removed=removed,
            canary=verdicts,
        )

    # -- judged on live traffic ---------------------------------------------------------------

    def _observe(self, run_id: int, seconds: float, new: list[str], batch: int) -> dict[str, Any]:
        """Every server this run added takes live traffic beside the old servers for `seconds`;
        then HAProxy's counters of the window judge them (phoenix.fleet.canary). A new server
        already failing with enough requests ends the window early. Raises CanaryFailed."""
        old = [
            s.name
            for s in self.records.servers(self.name)
            if s.status is ServerStatus.SERVING and s.name not in new
        ]
        limits = self.cfg.canary
        self._event(
            run_id, "canary", f"batch {batch}: observing {', '.join(new)} for {seconds:g} s"
        )
        before = self.traffic.counters()
        verdict = None
        for _ in ticks(seconds, OBSERVE_INTERVAL):
            now = self.traffic.counters()
            verdict = judge(windows(before, now, new), windows(before, now, old), limits)
            if not verdict.passed:
                break
        assert verdict is not None  # ticks yields at least once
        self._event(run_id, "canary", verdict.summary())
        if not verdict.passed:
            raise CanaryFailed(
                f"batch {batch} failed on live traffic: {verdict.summary()}",
                verdict.as_dict(),
                hint="the old image serves again; see: phoenix history " + self.name,
            )
        return verdict.as_dict()

    def _withdraw(self, names: Sequence[str]) -> None:
        """Take `names` out of traffic at once (no new request; those in flight end), to be
        removed by the settling that follows."""
        if self.traffic.running():
            for name in names:
                self.traffic.drain(name)
        self.records.set_status(list(names), ServerStatus.DRAINING)

    def _restore(self, run_id: int, previous: str | None) -> int | None:
        """After a rollback, bring the fleet back to its size on the image it served before
        (`previous`); the run that did it, or None when nothing was missing or it could not
        be done (revoked since, say: the rolled-back run's history says why)."""
        if previous is None:
            return None
        try:
            plan = self.plan(RunKind.DEPLOY, Options(image=previous, observe=False))
        except PhoenixError as exc:
            self._event(run_id, "rollback", f"not restored to its size: {exc.message}")
            return None
        if plan.empty:
            return None
        self.emit(StepOutput("rollback", f"restoring {self.name} to its size on {previous}"))
        return self.execute(plan).run_id

    def _admit(self, run_id: int, names: list[str]) -> None:
        """The new servers exist: pin their host keys, pass their health checks, and put them
        behind the load balancer without traffic (weight 0: its own checks start)."""
        if not names:
            return
        with ThreadPoolExecutor(max_workers=min(len(names), MAX_AT_ONCE)) as pool:
            identities = list(pool.map(self._identity, names))  # read from the provider
        addresses: dict[str, str] = {}
        for name, (address, host_key, started) in zip(names, identities, strict=True):
            addresses[name] = address
            self.records.set_identity(name, address, host_key, started)
        self.records.set_status(names, ServerStatus.STARTING)
        for name in names:
            address = addresses[name]
            waited = health.wait_healthy(name, address, self.health, self._command_runner(name))
            self._event(run_id, "health", f"{name} healthy after {waited:.1f} s")
        for name in names:
            self.traffic.add(name, addresses[name])

    def _identity(self, name: str) -> tuple[str, str, str | None]:
        """A new server's address, host key (pinned through the provider) and start time."""
        known = self.infra_states[name].address
        address = known or self.provider.wait_address(name, self.health.timeout)
        return address, self.provider.host_key(name, self.health.timeout), self._started(name)

    def _serve(self, run_id: int, names: list[str]) -> None:
        """Admitted servers take traffic, once the load balancer's own check passes."""
        if not names:
            return
        for name in names:
            self.traffic.wait_up(name, self.health.timeout)
        self.records.set_status(names, ServerStatus.SERVING)
        self._event(run_id, "traffic", f"{', '.join(names)} serving")

    def _started(self, name: str) -> str | None:
        """When the provider saw `name` start; None if it cannot tell (its first scan hashes
        every file then): never a reason to fail the rollout."""
        try:
            return self.provider.started(name)
        except PhoenixError:
            return None

    def _drain(self, run_id: int, olds: list[str]) -> list[str]:
        """Take old servers out of rotation; they are destroyed by the next apply."""
        self.records.set_status(olds, ServerStatus.DRAINING)
        for name in olds:
            self.traffic.drain(name)
        for name in olds:
            if not self.traffic.wait_drained(name, DRAIN_TIMEOUT):
                self._event(
                    run_id, "drain", f"{name} still had sessions after {DRAIN_TIMEOUT:.0f} s"
                )
            self.traffic.remove(name)
        # Out of rotation with nothing in flight: stop them, all at once, so that Terraform's
        # destroy in the next apply does not wait for a graceful shutdown of each. In the
        # background: the next apply waits for them (`_stopped`), the next batch need not.
        self._stop_later(olds)
        self.records.set_status(olds, ServerStatus.REMOVING)
        if olds:
            self._event(run_id, "drain", f"{', '.join(olds)} out of rotation")
        return olds

    def _stop_later(self, names: list[str]) -> None:
        """Stop `names` in the background (the run's threads are made by its first stop)."""
        if not names:
            return
        if self._stopper is None:
            self._stopper = ThreadPoolExecutor(max_workers=MAX_AT_ONCE, thread_name_prefix="stop")
        self._stopping += [self._stopper.submit(self.provider.stop, n, True) for n in names]

    def _stopped(self) -> None:
        """Wait for the old servers being stopped (see `_drain`); a stop that failed is left to
        Terraform's destroy, which stops what is still running."""
        pending, self._stopping = self._stopping, []
        for stopping in pending:
            with suppress(PhoenixError):
                stopping.result()

    def _close_stopper(self) -> None:
        """The run is over: wait for the stops still under way (none, unless it was cut short
        before its last apply), and end the stopping threads."""
        stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper.shutdown(wait=True)
        self._stopping = []

    def _apply(self, run_id: int, exclude: Sequence[str] = ()) -> None:
        """Make Terraform hold exactly the fleet's wanted servers."""
        self._stopped()
        keyed = functools.cache(self.registry.writes_key)
        wanted = {
            s.name: ServerSpec(
                image=self._image_id(s.image_tag),
                generation=s.generation,
                writes_key=keyed(s.image_tag),
            )
            for s in self.records.servers(self.name)
            if s.status in (ServerStatus.CREATING, ServerStatus.STARTING, ServerStatus.SERVING,
                            ServerStatus.DRAINING)
            and s.name not in exclude
        }  # fmt: skip
        key, _ = keys.ensure(self.ws.home)
        started = time.monotonic()
        with step(self.emit, "terraform", f"terraform apply ({len(wanted)} servers)"):
            self.infra_states = self.infra.apply(
                wanted, key.public_line, refresh=not self.refreshed
            )
        self.refreshed = True
        took = time.monotonic() - started
        self._event(run_id, "terraform", f"{len(wanted)} servers applied in {took:.1f} s")

    def _image_id(self, tag: str) -> str:
        """What the provider is given: the image's own id recorded at bake (an LXD fingerprint),
        never a name that another bake could take over."""
        return self.registry.provider_id(tag) or tag

    def _command_runner(self, name: str) -> Callable[[str], Any] | None:
        if self.health.type != "command":
            return None

        def run(command: str) -> Any:
            server = next(s for s in self.records.servers(self.name) if s.name == name)
            key, _ = keys.ensure(self.ws.home)
            target = ssh.Target(
                name=name, address=str(server.address), host_key=str(server.host_key)
            )
            with ssh.connect(target, key.private_path) as session:
                return session.run(command)

        return run

    # -- recovery -----------------------------------------------------------------------------

    def recover(self) -> list[int]:
        """Settle runs of this fleet that were cut short (the caller holds the fleet's lock)."""
        settled = []
        for run in self.records.unfinished(self.name):
            self.emit(StepOutput("recover", f"settling interrupted {run.kind} #{run.id}"))
            self._settle(run.id, RunStatus.INTERRUPTED)
            settled.append(run.id)
        return settled

    def _settle(self, run_id: int, status: RunStatus) -> None:
        """Remove what never served and what was leaving; keep what serves. Idempotent."""
        live = self.records.servers(self.name)
        never = [s.name for s in live if s.status in (ServerStatus.CREATING, ServerStatus.STARTING)]
        leaving = [
            s.name for s in live if s.status in (ServerStatus.DRAINING, ServerStatus.REMOVING)
        ]
        if self.traffic.running():
            for name in never + leaving:
                self.traffic.remove(name)
        known = self.infra.state_names()
        for orphan in sorted(set(self.provider.fleet_instances(self.name)) - known):
            self._event(
                run_id, "orphan", f"deleting {orphan}: created but never recorded by Terraform"
            )
            self.provider.delete(orphan)
        self.refreshed = False  # after a failure, read what is really there
        self._apply(run_id, exclude=never + leaving)
        self.records.set_status(never, ServerStatus.FAILED)
        self.records.set_status(leaving, ServerStatus.REMOVED)
        self._ensure_traffic()
        self.store.finish_run(run_id, status)

    def _ensure_traffic(self) -> None:
        serving = [
            (s.name, str(s.address))
            for s in self.records.servers(self.name)
            if s.status is ServerStatus.SERVING
        ]
        if self.traffic.ensure_running(serving):
            self.emit(StepOutput("traffic", f"load balancer started on {self.traffic.endpoint}"))

    # -- status and destroy -------------------------------------------------------------------

    def status(self) -> FleetStatus:
        backends = {b.name: b for b in self.traffic.servers()} if self.traffic.running() else {}
        views = [
            ServerView(
                name=s.name,
                address=s.address,
                image=s.image_tag,
                generation=s.generation,
                created_at=s.created_at,
                healthy=s.name in backends and backends[s.name].healthy,
                status=s.status,
            )
            for s in self.records.servers(self.name)
        ]
        return FleetStatus(
            fleet=self.name,
            endpoint=self.traffic.endpoint,
            servers=views,
            interrupted=self.records.unfinished(self.name),
            size=self.cfg.size,
        )

    def destroy(self) -> Result:
        plan = Plan(fleet=self.name, kind=RunKind.DESTROY, image="", strategy=None, batches=[])
        run_id = self.store.start_run(self.name, RunKind.DESTROY)
        live = [s.name for s in self.records.servers(self.name)]
        if self.traffic.running():
            for name in live:
                self.traffic.remove(name)
        self.records.set_status(live, ServerStatus.REMOVING)
        self._apply(run_id, exclude=live)
        self.records.set_status(live, ServerStatus.REMOVED)
        self.traffic.stop()
        self.store.finish_run(run_id, RunStatus.SUCCEEDED)
        return Result(plan=plan, run_id=run_id, status=RolloutStatus.SUCCEEDED, removed=live)

    # -- events -------------------------------------------------------------------------------

    def _event(self, run_id: int, step: str, detail: str) -> None:
        self.store.record_event(run_id, step, "info", detail)
        self.emit(StepOutput(step, f"{step}: {detail}"))


def _new_names(fleet: str, generation: int, plan: Plan) -> list[list[str]]:
    """The names of each batch's new servers: FLEET-gGENERATION-N, N counting on across batches."""
    names, index = [], 0
    for batch in plan.batches:
        names.append([f"{fleet}-g{generation}-{index + i + 1}" for i in range(batch.add)])
        index += batch.add
    return names


def _doing(number: int, new: list[list[str]], ahead: bool) -> str:
    """What batch `number` does, for the history; `ahead`: the first apply creates every
    batch's new servers (`new`), and later batches only move traffic to theirs."""
    names = new[number - 1]
    if ahead and number == 1:
        every = ", ".join(n for batch_names in new for n in batch_names)
        return f"create {every} (every batch's at once: surge = all)"
    if ahead and names:
        return f"traffic to {', '.join(names)} (created by batch 1)"
    return f"create {', '.join(names)}" if names else "no new server"


def _most_common(tags: Sequence[str]) -> str | None:
    return Counter(tags).most_common(1)[0][0] if tags else None


def _join(note: str, more: str) -> str:
    return f"{note}; {more}" if note else more

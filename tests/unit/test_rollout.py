"""The replacement cycle against fakes: order of moves, health gate, rollback, recovery."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix import ops
from phoenix.cli import render
from phoenix.cli.app import app
from phoenix.config import HealthCheck, Surge, load
from phoenix.errors import ExitCode, HealthError, LXDError, NotFound, Refused
from phoenix.fleet import rollout
from phoenix.fleet.haproxy.runtime import Backend, Counters
from phoenix.fleet.plan import Options, Plan, Result, RolloutStatus
from phoenix.fleet.records import Records, ServerStatus
from phoenix.fleet.rollout import Fleet
from phoenix.fleet.terraform.inputs import ServerSpec, ServerState
from phoenix.image.registry import Registry
from phoenix.state import RunKind, RunStatus, Store, now
from phoenix.workspace import Workspace

STARTED = "1796315932.11"  # what FakeProvider says of every server's first start
CONFIG = """
[images.web]
[fleets.web]
image = "web"
size = 3
"""


@dataclass
class FakeInfra:
    servers: dict[str, ServerSpec] = field(default_factory=dict)
    applies: int = 0
    refreshed: list[bool] = field(default_factory=list)  # each apply's refresh

    def apply(
        self, servers: Mapping[str, ServerSpec], authorized_key: str, refresh: bool = True
    ) -> dict[str, ServerState]:
        self.applies += 1
        self.refreshed.append(refresh)
        self.servers = dict(servers)
        return {
            n: ServerState(
                name=n, address=f"10.213.0.{i + 10}", image=s.image, generation=s.generation
            )
            for i, (n, s) in enumerate(sorted(servers.items()))
        }

    def state_names(self) -> set[str]:
        return set(self.servers)


@dataclass
class FakeTraffic:
    up: dict[str, str] = field(default_factory=dict)  # name -> "up" | "drain"
    size: int = 3
    lowest: int = 99  # fewest servers taking traffic after any change
    log: list[str] = field(default_factory=list)
    crash_on: str | None = None
    is_running: bool = False
    # what `counters` reports, set by a test: one snapshot per call, the last one repeated
    counts: list[dict[str, Counters]] = field(default_factory=list)
    # or live traffic: each read, every server taking traffic answered 50 more requests; those
    # whose name starts with one of `failing` had 15 of them replayed elsewhere (answered 500)
    live: bool = False
    failing: set[str] = field(default_factory=set)
    totals: dict[str, Counters] = field(default_factory=dict)

    def _live(self) -> dict[str, Counters]:
        for name, state in self.up.items():
            was = self.totals.get(name, Counters())
            bad = 15 if state == "up" and name.startswith(tuple(self.failing)) else 0
            more = 50 if state == "up" else 0
            self.totals[name] = Counters(
                responses={"2xx": was.responded("2xx") + more - bad},
                retries=was.retries + bad,
                sessions=was.sessions + more,
                rtime_ms=2,
            )
        return {name: self.totals[name] for name in self.up}

    @property
    def endpoint(self) -> str:
        return "127.0.0.1:8080"

    def running(self) -> bool:
        return self.is_running

    def ensure_running(self, servers: Sequence[tuple[str, str]]) -> bool:
        started = not self.is_running
        if started:
            self.up = {name: "up" for name, _ in servers}
        self.is_running = True
        return started

    def stop(self) -> None:
        self.is_running = False

    def servers(self) -> list[Backend]:
        return [
            Backend(
                name=n,
                address="x",
                port=80,
                op_state=2,
                admin_state=0 if s == "up" else 8,
                sessions=0,
            )
            for n, s in self.up.items()
        ]

    def counters(self) -> dict[str, Counters]:
        if self.live:
            return self._live()
        if not self.counts:
            return {name: Counters() for name in self.up}
        return self.counts.pop(0) if len(self.counts) > 1 else self.counts[0]

    def add(self, name: str, address: str) -> None:
        self.up[name] = "up"
        self._note(f"add {name}")

    def wait_up(self, name: str, timeout: float) -> None:
        pass

    def drain(self, name: str) -> None:
        if self.crash_on == name:
            raise Crash
        self.up[name] = "drain"
        self._note(f"drain {name}")

    def wait_drained(self, name: str, timeout: float) -> bool:
        return True

    def remove(self, name: str) -> None:
        self.up.pop(name, None)
        self._note(f"remove {name}")

    def _note(self, move: str) -> None:
        self.log.append(move)
        serving = sum(1 for s in self.up.values() if s == "up")
        if len(self.log) > self.size:  # once the first deploy is in
            self.lowest = min(self.lowest, serving)


@dataclass
class FakeProvider:
    extra: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    infra: FakeInfra | None = None
    blind: bool = False  # `started` fails, as LXD's API can

    def host_key(self, name: str, timeout: float = 60) -> str:
        return f"ssh-ed25519 KEY-{name}"

    def started(self, name: str) -> str | None:
        if self.blind:
            raise LXDError("cannot read the state of instance " + name)
        return STARTED

    def fleet_instances(self, fleet: str) -> list[str]:
        known = list(self.infra.servers) if self.infra else []
        return known + self.extra

    def wait_address(self, name: str, timeout: float = 60) -> str:
        return "10.213.0.99"

    def stop(self, name: str, force: bool = False, timeout: int = 30) -> None:
        self.stopped.append(name)

    def delete(self, name: str) -> None:
        self.deleted.append(name)
        self.extra.remove(name)


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs."""


@dataclass
class World:
    ws: Workspace
    store: Store
    infra: FakeInfra
    traffic: FakeTraffic
    provider: FakeProvider
    unhealthy: set[str]

    def fleet(self) -> Fleet:
        return Fleet(self.ws, self.store, "web", self.infra, self.traffic, self.provider)

    def serving(self) -> list[str]:
        return [
            s.name for s in Records(self.store).servers("web") if s.status is ServerStatus.SERVING
        ]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    (tmp_path / "phoenix.toml").write_text(CONFIG)
    ws = Workspace(tmp_path / "phoenix.toml", load(tmp_path / "phoenix.toml"), tmp_path / "home")
    store = Store.open(ws.home)
    registry = Registry(store)
    for _ in range(2):
        tag = registry.begin("web", "t", {}, None, "p", ws.home).tag
        registry.ready(tag, f"fp-{tag}", "1.6.6", {})
    infra = FakeInfra()
    unhealthy: set[str] = set()

    def wait_healthy(name: str, address: str, check: HealthCheck, run: object = None) -> float:
        if name in unhealthy or any(name.startswith(p) for p in unhealthy):
            raise HealthError(f"{name} ({address}) was not healthy within 1 s: refused")
        return 0.1

    monkeypatch.setattr(rollout.health, "wait_healthy", wait_healthy)
    return World(ws, store, infra, FakeTraffic(), FakeProvider(infra=infra), unhealthy)


def deploy(world: World, image: str = "web-v001") -> None:
    fleet = world.fleet()
    result = fleet.execute(fleet.plan(RunKind.DEPLOY, Options(image=image)))
    assert result.status is RolloutStatus.SUCCEEDED


def test_fake_traffic_reports_the_counters_it_is_given() -> None:
    traffic = FakeTraffic(up={"web-g1-1": "up"})
    assert traffic.counters() == {"web-g1-1": Counters()}
    first = {"web-g1-1": Counters(responses={"2xx": 10})}
    second = {"web-g1-1": Counters(responses={"2xx": 30, "5xx": 1})}
    traffic.counts = [first, second]
    assert [traffic.counters() for _ in range(3)] == [first, second, second]


def test_deploy_creates_the_fleet_and_a_second_deploy_does_nothing(world: World) -> None:
    deploy(world)
    assert world.serving() == ["web-g1-1", "web-g1-2", "web-g1-3"]
    assert set(world.traffic.up) == set(world.serving())
    again = world.fleet().plan(RunKind.DEPLOY)
    assert again.empty and "already has 3" in again.note
    # each server's first start, as the provider saw it: its first scan starts from the image
    assert {s.settled for s in world.fleet().records.servers("web")} == {STARTED}


def test_servers_of_an_image_that_writes_the_key_are_told_so_to_terraform(world: World) -> None:
    """A server of an image whose bake found it writes the operator's key from its config
    (Registry.writes_key) is applied with `writes_key`; one of an older image is not."""
    deploy(world)  # web-v001: baked before phoenix asked
    registry = Registry(world.store)
    tag = registry.begin("web", "t", {}, None, "p", world.ws.home).tag
    registry.ready(tag, f"fp-{tag}", "1.6.6", {}, writes_key=True)
    assert registry.writes_key(tag) and not registry.writes_key("web-v001")
    assert not registry.writes_key("web-v999")
    fleet = world.fleet()
    fleet.execute(fleet.plan(RunKind.DEPLOY, Options(image=tag)))  # nothing to do: at its size
    result = fleet.execute(fleet.plan(RunKind.REBUILD, Options(image=tag)))
    assert result.status is RolloutStatus.SUCCEEDED
    assert world.infra.servers and all(s.writes_key for s in world.infra.servers.values())
    assert all(s.image == f"fp-{tag}" for s in world.infra.servers.values())


def test_a_start_time_the_provider_cannot_read_never_fails_the_rollout(world: World) -> None:
    world.provider.blind = True
    deploy(world)
    assert world.serving() == ["web-g1-1", "web-g1-2", "web-g1-3"]
    assert {s.settled for s in world.fleet().records.servers("web")} == {None}


def test_rolling_rebuild_never_has_fewer_than_size_serving(world: World) -> None:
    deploy(world)
    fleet = world.fleet()
    result = fleet.execute(fleet.plan(RunKind.REBUILD))
    assert result.status is RolloutStatus.SUCCEEDED
    assert world.serving() == ["web-g2-1", "web-g2-2", "web-g2-3"]
    assert set(world.infra.servers) == set(world.serving())
    assert world.traffic.lowest >= 3
    assert all(s.image == "fp-web-v002" for s in world.infra.servers.values())  # by fingerprint
    # surge = all: deploy, then one apply creating every new server and one removing the old
    assert world.infra.applies == 1 + 2
    # the rebuild's first apply reads every server; the next ones trust the state it made
    assert world.infra.refreshed == [True, True, False]
    created = _batches(world)
    assert created[0] == "create web-g2-1, web-g2-2, web-g2-3 (every batch's at once: surge = all)"
    assert created[1:] == [f"traffic to web-g2-{n} (created by batch 1)" for n in (2, 3)]


def test_no_stopping_thread_outlives_a_rebuild(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(world)
    made: list[ThreadPoolExecutor] = []

    def executor(*args: Any, **kwargs: Any) -> ThreadPoolExecutor:
        made.append(ThreadPoolExecutor(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(rollout, "ThreadPoolExecutor", executor)
    fleet = world.fleet()
    assert fleet.execute(fleet.plan(RunKind.REBUILD)).status is RolloutStatus.SUCCEEDED
    assert sorted(world.provider.stopped) == ["web-g1-1", "web-g1-2", "web-g1-3"]
    stopper = [e for e in made if e._thread_name_prefix == "stop"]
    assert len(stopper) == 1  # the old servers were stopped in the background ...
    with pytest.raises(RuntimeError, match="after shutdown"):
        stopper[0].submit(print)  # ... by an executor shut down when the run ended
    for e in made:  # and the admission's readers too
        with pytest.raises(RuntimeError, match="after shutdown"):
            e.submit(print)
    assert not [t for t in threading.enumerate() if t.name.startswith("stop_")]


def _batches(world: World) -> list[str]:
    """What each batch of the last rebuild did, from its history."""
    records = Records(world.store)
    run = next(r for r in records.runs("web") if r.kind is RunKind.REBUILD)
    return [e["detail"] for e in records.events(run.id) if e["step"].startswith("batch ")]


def test_surge_batch_creates_each_batch_by_an_apply_of_its_own(world: World) -> None:
    deploy(world)
    cfg = world.ws.config
    fleets = {"web": cfg.fleets["web"].model_copy(update={"surge": Surge.BATCH})}
    world.ws = replace(world.ws, config=cfg.model_copy(update={"fleets": fleets}))
    fleet = world.fleet()
    result = fleet.execute(fleet.plan(RunKind.REBUILD))
    assert result.status is RolloutStatus.SUCCEEDED and world.traffic.lowest >= 3
    assert world.serving() == ["web-g2-1", "web-g2-2", "web-g2-3"]
    assert world.infra.applies == 1 + 4  # deploy, then one apply per batch plus the last removal
    assert world.infra.refreshed == [True, True, False, False, False]
    assert _batches(world) == [f"create web-g2-{n}" for n in (1, 2, 3)]


def rolled_back(world: World, unhealthy: str, opts: Options = Options()) -> Result:
    """A rebuild after the first deploy in which the new servers whose names start with
    `unhealthy` fail their health check: rolled back, the old servers serving, and Terraform
    holding nothing else."""
    deploy(world)
    world.unhealthy.add(unhealthy)
    fleet = world.fleet()
    result = fleet.execute(fleet.plan(RunKind.REBUILD, opts))
    assert result.status is RolloutStatus.ROLLED_BACK
    assert world.serving() == ["web-g1-1", "web-g1-2", "web-g1-3"]
    assert set(world.infra.servers) == set(world.serving())
    return result


def test_servers_created_ahead_that_never_served_go_when_a_batch_fails(world: World) -> None:
    assert "web-g2-2" in rolled_back(world, "web-g2-2").reason
    assert world.traffic.lowest >= 3
    # every new server is checked before the first batch takes traffic: the rollout fails
    # before any old server left, and none of the new ones stays
    states = {s.name: s.status for s in Records(world.store).servers("web", live=False)}
    assert {states[f"web-g2-{n}"] for n in (1, 2, 3)} == {ServerStatus.FAILED}
    assert not any(m.startswith("drain") for m in world.traffic.log)


def test_json_and_the_store_hold_plain_strings_read_back_as_enums(world: World) -> None:
    result = rolled_back(world, "web-g2-", Options(strategy="blue-green"))
    data = json.loads(json.dumps(result.as_dict()))
    assert data["status"] == "rolled_back"
    assert (data["plan"]["kind"], data["plan"]["strategy"]) == ("rebuild", "blue-green")
    assert list(data) == [
        "plan", "run_id", "status", "reason", "added", "removed", "warnings", "canary", "restored"
    ]  # fmt: skip
    rows = world.store.rows("SELECT kind, status, detail_json FROM runs ORDER BY id")
    assert [(r["kind"], r["status"]) for r in rows] == [
        ("deploy", "succeeded"), ("rebuild", "rolled_back"),
    ]  # fmt: skip
    assert json.loads(rows[1]["detail_json"])["strategy"] == "blue-green"
    last = Records(world.store).runs("web")[0]
    assert last.kind is RunKind.REBUILD and last.status is RunStatus.ROLLED_BACK
    assert json.loads(json.dumps(last.as_dict()))["status"] == "rolled_back"
    status = world.fleet().status()
    assert {v.status for v in status.servers} == {ServerStatus.SERVING}
    assert "status" not in status.as_dict()["servers"][0]


def test_blue_green_moves_traffic_only_when_all_new_are_in(world: World) -> None:
    deploy(world)
    fleet = world.fleet()
    world.traffic.log.clear()
    fleet.execute(fleet.plan(RunKind.REBUILD, Options(strategy="blue-green")))
    first_drain = next(i for i, m in enumerate(world.traffic.log) if m.startswith("drain"))
    assert [m for m in world.traffic.log[:first_drain]] == [
        "add web-g2-1", "add web-g2-2", "add web-g2-3",
    ]  # fmt: skip


def test_unhealthy_batch_is_rolled_back_and_the_next_batch_untouched(world: World) -> None:
    assert "not healthy" in rolled_back(world, "web-g2-").reason
    assert set(world.traffic.up) == set(world.serving())
    assert not any(m == "add web-g2-2" for m in world.traffic.log)  # never took traffic
    runs = Records(world.store).runs("web")
    assert runs[0].status is RunStatus.ROLLED_BACK


def test_crash_mid_rebuild_is_settled_then_finished(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(world)
    world.traffic.crash_on = "web-g1-2"  # the second batch dies while draining
    fleet = world.fleet()
    with monkeypatch.context() as patch, pytest.raises(Crash):
        patch.setattr(Fleet, "_settle", lambda self, run_id, status: None)  # kill -9: no clean-up
        fleet.execute(fleet.plan(RunKind.REBUILD))
    world.traffic.crash_on = None
    world.provider.extra.append("web-g2-9")  # created by Terraform, never in its state

    fresh = world.fleet()
    assert fresh.recover()  # what the next run under the lock does
    assert world.provider.deleted == ["web-g2-9"]
    assert Records(world.store).runs("web")[0].status is RunStatus.INTERRUPTED
    plan = fresh.plan(RunKind.REBUILD)
    assert "interrupted" in plan.note
    assert [b.remove for b in plan.batches] == [["web-g1-3"]]  # g1-1 and g1-2 were replaced
    finished = fresh.execute(plan)
    assert finished.status is RolloutStatus.SUCCEEDED, finished.reason
    assert all(not n.startswith("web-g1") for n in world.serving())
    assert len(world.serving()) == 3
    assert set(world.infra.servers) == set(world.serving())


@pytest.mark.parametrize(
    ("opts", "error", "text"),
    [
        (Options(batch=0), Refused, "--batch 0"),
        (Options(image="web-v009"), NotFound, "no image web-v009"),
        (Options(only=("nope",)), Refused, "not servers of web"),
        (Options(older_than="soon"), Refused, "--older-than"),
        (Options(strategy="yolo"), Refused, "--strategy"),
    ],
)
def test_bad_input_is_refused_before_anything_changes(
    world: World, opts: Options, error: type[Exception], text: str
) -> None:
    deploy(world)
    applies = world.infra.applies
    with pytest.raises(error, match=text):
        world.fleet().plan(RunKind.REBUILD, opts)
    assert world.infra.applies == applies


def test_revoked_image_is_refused(world: World) -> None:
    Registry(world.store).revoke("web-v002")
    deploy(world)
    with pytest.raises(Refused, match="revoked"):
        world.fleet().plan(RunKind.REBUILD, Options(image="web-v002"))


def test_unknown_fleet(world: World) -> None:
    with pytest.raises(NotFound, match="no fleet api") as caught:
        Fleet(world.ws, world.store, "api", world.infra, world.traffic, world.provider)
    assert caught.value.hint == "defined fleets: web"
    assert caught.value.exit_code == ExitCode.REFUSED


def test_only_and_older_than_select(world: World) -> None:
    deploy(world)
    fleet = world.fleet()
    only = fleet.plan(RunKind.REBUILD, Options(only=("web-g1-2",)))
    assert [b.remove for b in only.batches] == [["web-g1-2"]]
    assert fleet.plan(RunKind.REBUILD, Options(older_than="1h")).empty


def test_ctrl_c_mid_rebuild_leaves_nothing_half_done(world: World) -> None:
    deploy(world)
    fleet = world.fleet()

    def interrupt(name: str) -> None:
        raise KeyboardInterrupt

    world.traffic.drain = interrupt  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        fleet.execute(fleet.plan(RunKind.REBUILD))
    runs = Records(world.store).runs("web")
    assert runs[0].status is RunStatus.INTERRUPTED
    live = Records(world.store).servers("web")
    assert {s.status for s in live} == {ServerStatus.SERVING}
    assert set(world.infra.servers) == {s.name for s in live} == set(world.traffic.up)


# -- the nightly policy: servers due, and a fleet that converges to its size --------------------


def configure(world: World, size: int = 3, **settings: str) -> None:
    """The fleet `web` with `size` and other settings, as if phoenix.toml were edited."""
    extra = "".join(f'{key} = "{value}"\n' for key, value in settings.items())
    path = world.ws.config_file
    path.write_text(f'[images.web]\n[fleets.web]\nimage = "web"\nsize = {size}\n{extra}')
    world.ws = Workspace(path, load(path), world.ws.home)


def age(world: World, name: str, days: float) -> None:
    created = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="milliseconds")
    with world.store.transaction() as db:
        db.execute("UPDATE servers SET created_at = ? WHERE name = ?", (created, name))


def scanned(world: World, server: str, *severities: str) -> None:
    """A recorded drift scan of `server` finding `severities` (none: a clean scan)."""
    run_id = world.store.start_run(None, RunKind.DRIFT)
    at = now()
    with world.store.transaction() as db:
        for n, severity in enumerate(severities):
            db.execute(
                "INSERT INTO findings (run_id, server, kind, subject, severity, found_at)"
                " VALUES (?, ?, 'file.modified', ?, ?, ?)",
                (run_id, server, f"/etc/f{n}", severity, at),
            )
        db.execute(
            "INSERT INTO hash_caches (server, updated_at, entries) VALUES (?, ?, x'')"
            " ON CONFLICT (server) DO UPDATE SET updated_at = excluded.updated_at",
            (server, at),
        )
    world.store.finish_run(run_id, RunStatus.SUCCEEDED)


def removals(plan: Plan) -> list[list[str]]:
    return [b.remove for b in plan.batches]


def test_due_replaces_old_and_drifted_servers_only(world: World) -> None:
    configure(world, max_age="7d", replace_on="medium")
    deploy(world, "web-v002")
    age(world, "web-g1-1", 8)
    scanned(world, "web-g1-2", "medium")
    scanned(world, "web-g1-3", "low")
    plan = world.fleet().plan(RunKind.REBUILD, Options(due=True))
    assert removals(plan) == [["web-g1-1"], ["web-g1-2"]] and plan.note == "2 due"
    assert plan.reasons["web-g1-1"] == ["older than max_age 7d (created 8d ago)"]
    assert plan.reasons["web-g1-2"][0].startswith("drifted: 1 finding(s) at or above medium")
    scanned(world, "web-g1-2")  # a later clean scan: its drift is gone
    assert removals(world.fleet().plan(RunKind.REBUILD, Options(due=True))) == [["web-g1-1"]]


def test_due_replaces_servers_of_an_older_or_revoked_image(world: World) -> None:
    deploy(world, "web-v001")
    plan = world.fleet().plan(RunKind.REBUILD, Options(due=True))
    assert len(plan.batches) == 3
    assert plan.reasons["web-g1-3"] == ["built from web-v001, older than the newest ready web-v002"]
    Registry(world.store).revoke("web-v002")
    fresh = world.fleet().plan(RunKind.REBUILD, Options(due=True))
    assert fresh.empty and fresh.note == "nothing due"  # web-v001 is the newest ready now


def test_a_fleet_rebuilt_this_afternoon_is_not_replaced_tonight(world: World) -> None:
    configure(world, max_age="1d", replace_on="high")
    deploy(world)
    scanned(world, "web-g1-1", "high")
    fleet = world.fleet()
    assert fleet.execute(fleet.plan(RunKind.REBUILD)).status is RolloutStatus.SUCCEEDED
    scanned(world, "web-g2-1", "medium")
    plan = world.fleet().plan(RunKind.REBUILD, Options(due=True))
    assert plan.empty and plan.note == "nothing due"
    result = world.fleet().execute(plan)
    assert result.status is RolloutStatus.NOTHING and result.run_id is None


def test_due_cannot_be_combined_with_a_choice_of_servers(world: World) -> None:
    deploy(world)
    with pytest.raises(Refused, match="--due"):
        world.fleet().plan(RunKind.REBUILD, Options(due=True, only=("web-g1-1",)))


def five_for_three(world: World) -> None:
    """Three servers on web-v001, two more on web-v002, then the size lowered back to 3."""
    deploy(world)
    configure(world, size=5)
    deploy(world, "web-v002")
    configure(world, size=3)
    world.traffic.log.clear()
    world.traffic.size, world.traffic.lowest = 0, 99  # count from the first move on


def test_deploy_trims_to_the_size_never_serving_fewer(world: World) -> None:
    five_for_three(world)
    applies = world.infra.applies
    fleet = world.fleet()
    plan = fleet.plan(RunKind.DEPLOY)
    assert removals(plan) == [["web-g1-1", "web-g1-2"]] and plan.batches[0].add == 0
    assert plan.reasons["web-g1-1"] == ["beyond the fleet's size 3"]
    assert "5 serving, size 3" in plan.note
    result = fleet.execute(plan)
    assert result.status is RolloutStatus.SUCCEEDED and result.removed == ["web-g1-1", "web-g1-2"]
    assert world.serving() == ["web-g1-3", "web-g2-1", "web-g2-2"]
    assert world.traffic.log == [
        "drain web-g1-1", "drain web-g1-2", "remove web-g1-1", "remove web-g1-2",
    ]  # fmt: skip
    assert world.traffic.lowest == 3  # never fewer: both drained while five were in
    assert world.infra.applies == applies + 1 and set(world.infra.servers) == set(world.serving())
    assert world.fleet().plan(RunKind.DEPLOY).empty


def test_rebuild_ends_at_the_size(world: World) -> None:
    five_for_three(world)
    fleet = world.fleet()
    plan = fleet.plan(RunKind.REBUILD)
    assert removals(plan) == [["web-g1-1", "web-g1-2"], ["web-g1-3"], ["web-g2-1"], ["web-g2-2"]]
    assert [b.add for b in plan.batches] == [0, 1, 1, 1]
    assert fleet.execute(plan).status is RolloutStatus.SUCCEEDED
    assert world.serving() == ["web-g3-1", "web-g3-2", "web-g3-3"]
    assert world.traffic.lowest == 3
    assert set(world.infra.servers) == set(world.serving())


def test_rebuild_tops_up_a_fleet_below_its_size(world: World) -> None:
    deploy(world)
    configure(world, size=5)
    plan = world.fleet().plan(RunKind.REBUILD, Options(only=("web-g1-1",)))
    assert [(b.remove, b.add) for b in plan.batches] == [(["web-g1-1"], 3)]


def test_status_says_when_a_fleet_is_not_at_its_size(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    five_for_three(world)
    status = world.fleet().status()
    data = json.loads(json.dumps(status.as_dict()))
    assert (data["size"], data["serving"], data["at_size"]) == (3, 5, False)
    render.fleet_status(status)
    assert "web: 5 serving, size 3: run phoenix deploy web to converge" in capsys.readouterr().out
    configure(world, size=6)
    render.fleet_status(world.fleet().status())
    assert "web: 5 of size 6 serving" in capsys.readouterr().out
    configure(world, size=5)
    assert world.fleet().status().at_size
    render.fleet_status(world.fleet().status())
    assert "size" not in capsys.readouterr().out


def cli(world: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """`phoenix ARGS` on the world's workspace, its adapters the world's fakes."""
    monkeypatch.setenv("PHOENIX_HOME", str(world.ws.home))
    adapters = (world.infra, world.traffic, world.provider)
    monkeypatch.setattr(ops, "_adapters", lambda *_: adapters)
    result = CliRunner().invoke(app, ["--config", str(world.ws.config_file), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout


def test_rebuild_due_through_the_cli(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(world, max_age="7d")
    deploy(world, "web-v002")
    age(world, "web-g1-2", 10)
    code, out = cli(world, monkeypatch, "rebuild", "web", "--due", "--dry-run")
    assert code == 0
    assert "rebuild web with web-v002 (rolling) — 1 due" in out
    assert "  batch 1: 1 new server(s) in; out: web-g1-2" in out
    assert "    web-g1-2: older than max_age 7d (created 10d ago)" in out
    code, out = cli(world, monkeypatch, "rebuild", "web", "--due", "--dry-run", "--json")
    assert json.loads(out)["reasons"] == {"web-g1-2": ["older than max_age 7d (created 10d ago)"]}
    age(world, "web-g1-2", 1)
    code, out = cli(world, monkeypatch, "rebuild", "web", "--due")
    assert (code, out.strip()) == (0, "web: nothing to do: nothing due")
    assert [r.kind for r in Records(world.store).runs("web")] == [RunKind.DEPLOY]

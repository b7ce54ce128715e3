"""A rollout judged on live traffic, against fakes: the window, the rollback, the circuit."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from phoenix.config import load
from phoenix.fleet import rollout
from phoenix.fleet.plan import Options, Result, RolloutStatus
from phoenix.fleet.records import Records
from phoenix.image.registry import Registry
from phoenix.state import RunKind, RunStatus
from phoenix.workspace import Workspace
from tests.unit.test_rollout import CONFIG, World, deploy, world  # noqa: F401 (a fixture)

OBSERVED = CONFIG + 'observe = "30s"\n'


@pytest.fixture
def observed(world: World, monkeypatch: pytest.MonkeyPatch) -> World:  # noqa: F811
    """The world's fleet observes each batch; a window is three reads of the counters."""
    config = world.ws.config_file
    config.write_text(OBSERVED)
    world.ws = Workspace(config, load(config), world.ws.home)

    def ticks(timeout: float, interval: float) -> Iterator[float]:
        assert timeout == 30
        yield from (30.0, 15.0, 0.0)

    monkeypatch.setattr(rollout, "ticks", ticks)
    world.traffic.live = True
    return world


def _events(the: World, step: str) -> list[str]:
    records = Records(the.store)
    run = next(r for r in records.runs("web") if r.kind is RunKind.REBUILD)
    return [e["detail"] for e in records.events(run.id) if e["step"] == step]


def test_a_good_batch_passes_its_window(observed: World) -> None:
    deploy(observed)
    fleet = observed.fleet()
    plan = fleet.plan(RunKind.REBUILD)
    assert plan.observe == 30
    result = fleet.execute(plan)
    assert result.status is RolloutStatus.SUCCEEDED
    assert len(result.canary) == 3 and all(v["passed"] for v in result.canary)
    assert observed.serving() == ["web-g2-1", "web-g2-2", "web-g2-3"]
    assert any(d.startswith("passed against the old servers") for d in _events(observed, "canary"))
    json.dumps(result.as_dict())


def test_a_failing_first_batch_leaves_at_once_and_the_old_servers_stay(observed: World) -> None:
    deploy(observed)
    observed.traffic.failing.add("web-g2-")
    fleet = observed.fleet()
    result = fleet.execute(fleet.plan(RunKind.REBUILD, Options(image="web-v002")))
    assert result.status is RolloutStatus.ROLLED_BACK
    assert "batch 1 failed on live traffic" in result.reason and "errors 30.0%" in result.reason
    assert observed.serving() == ["web-g1-1", "web-g1-2", "web-g1-3"]
    assert set(observed.traffic.up) == set(observed.serving())
    assert set(observed.infra.servers) == set(observed.serving())
    assert result.restored is None  # nothing was missing: the old servers never left
    assert not result.canary[-1]["passed"] and result.removed == ["web-g2-1"]
    run = Records(observed.store).runs("web")[0]
    assert run.status is RunStatus.ROLLED_BACK
    assert any("errors 30.0%" in d for d in _events(observed, "canary"))


def _degrading_in_batch_2(
    observed: World, meanwhile: Callable[[], object] = lambda: None
) -> tuple[Result, int]:
    """Rebuild onto web-v002; batch 1's server passes its window, then fails in batch 2's
    (`meanwhile` runs then too). The result, and how many windows were observed."""
    fleet = observed.fleet()
    windows = []
    observe = rollout.Fleet._observe

    def degrading(self: rollout.Fleet, run_id: int, secs: float, new: list[str], n: int) -> object:
        windows.append(n)
        if n == 2:
            observed.traffic.failing.add("web-g2-1")
            meanwhile()
        return observe(self, run_id, secs, new, n)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rollout.Fleet, "_observe", degrading)
        result = fleet.execute(fleet.plan(RunKind.REBUILD, Options(image="web-v002")))
    return result, len(windows)


def test_servers_degrading_in_a_later_batch_roll_the_whole_rollout_back(observed: World) -> None:
    """The circuit is on the rollout: batch 1 passed, then its server fails in batch 2's window;
    both new servers go and the fleet is brought back to its size on the old image."""
    deploy(observed)
    result, windows = _degrading_in_batch_2(observed)
    assert result.status is RolloutStatus.ROLLED_BACK and windows == 2
    assert "web-g2-1" in result.reason and "batch 2" in result.reason
    assert {"web-g1-1", "web-g2-1", "web-g2-2"} == set(result.removed)
    serving = Records(observed.store).servers("web")
    live = [s for s in serving if s.name in observed.serving()]
    assert len(live) == 3 and {s.image_tag for s in live} == {"web-v001"}
    assert result.restored is not None
    assert set(observed.traffic.up) == set(observed.serving())
    assert set(observed.infra.servers) == set(observed.serving())


def test_no_observe_skips_the_window_and_says_so(observed: World) -> None:
    deploy(observed)
    observed.traffic.failing.add("web-g2-")
    fleet = observed.fleet()
    plan = fleet.plan(RunKind.REBUILD, Options(observe=False))
    assert plan.observe is None and "observation skipped (--no-observe)" in plan.note
    result = fleet.execute(plan)
    assert result.status is RolloutStatus.SUCCEEDED and result.canary == []
    assert any("--no-observe" in d for d in _events(observed, "plan"))


def test_too_little_traffic_is_not_a_failure(observed: World) -> None:
    deploy(observed)
    observed.traffic.live = False  # nobody sends a request: every counter stays at zero
    fleet = observed.fleet()
    result = fleet.execute(fleet.plan(RunKind.REBUILD))
    assert result.status is RolloutStatus.SUCCEEDED
    assert all("too little traffic" in v["summary"] for v in result.canary)


def test_a_rollback_that_cannot_restore_says_why(observed: World) -> None:
    """The image the fleet served was revoked meanwhile: the failed rollout still rolls back,
    and its history says the fleet was not brought back to its size, and why."""
    deploy(observed)
    result, _ = _degrading_in_batch_2(observed, lambda: Registry(observed.store).revoke("web-v001"))
    assert result.status is RolloutStatus.ROLLED_BACK and result.restored is None
    assert any(
        "not restored to its size" in d and "revoked" in d for d in _events(observed, "rollback")
    )
    assert len(observed.serving()) == 2  # what is left serves; status says it is not at size

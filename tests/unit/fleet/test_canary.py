"""The canary judgement: windows from two counter snapshots, and new servers judged against the
old servers, or against absolute limits when the old servers took too little traffic."""

from __future__ import annotations

import json

import pytest

from phoenix.config import CanaryConfig
from phoenix.fleet import canary
from phoenix.fleet.canary import ABSOLUTE_LIMITS, OLD_SERVERS, Limits, Window, judge, window
from phoenix.fleet.haproxy.runtime import Counters

LIMITS = Limits()


def traffic(requests: int, errors_5xx: int = 0, rtime: float = 10, conn: int = 0) -> Window:
    """A server's window: `requests` answered, of which `errors_5xx` were 5xx."""
    return Window(requests=requests, errors_5xx=errors_5xx, conn_errors=conn, rtime_ms=rtime)


CLEAN_OLD = {"web-g1-1": traffic(500, 1), "web-g1-2": traffic(500, 1)}  # 0.2% 5xx, 10 ms


# --- windows -------------------------------------------------------------------------------


def counts(ok: int, errors: int = 0, econ: int = 0, rtime: int = 10, **more: int) -> Counters:
    return Counters(responses={"2xx": ok, "5xx": errors}, conn_errors=econ, rtime_ms=rtime, **more)


def test_window_is_the_difference_of_two_snapshots() -> None:
    before = counts(100, 2, econ=1, resp_errors=1, retries=1, redispatches=0, rtime=12)
    after = counts(160, 12, econ=4, resp_errors=2, retries=3, redispatches=1, rtime=30)
    got = window(before, after)
    assert got == Window(
        requests=70,
        errors_5xx=10,
        conn_errors=3,
        resp_errors=1,
        retries=2,
        redispatches=1,
        rtime_ms=30,
    )
    assert got.error_rate == pytest.approx(10 / 73)  # of the attempts: 70 answered, 3 not
    assert got.attempts == 73
    assert got.conn_error_rate == pytest.approx(4 / 73)  # (econ + eresp) / (requests + econ)


def test_a_server_new_in_the_second_snapshot_counts_from_zero() -> None:
    assert window(None, counts(30, 3)) == traffic(33, 3)


def test_counters_that_went_down_are_a_reset() -> None:
    """The server was deleted and added again: its counters restarted during the window."""
    before = counts(1000, 0, econ=5)
    after = counts(40, 4, econ=1)  # fewer of everything
    assert window(before, after) == traffic(44, 4, conn=1)
    only_one = counts(1000, 0, econ=0, retries=7)
    assert window(only_one, counts(1010, 0, retries=2)).requests == 1010  # retries went down


def test_windows_of_every_server_in_the_later_snapshot() -> None:
    before = {"a": counts(10), "gone": counts(5)}
    after = {"a": counts(30), "b": counts(7)}
    assert canary.windows(before, after) == {"a": traffic(20), "b": traffic(7)}


def test_an_idle_window_has_zero_rates() -> None:
    idle = Window()
    assert (idle.requests, idle.error_rate, idle.conn_error_rate) == (0, 0.0, 0.0)


def test_conn_error_rate_is_capped() -> None:
    assert Window(requests=2, resp_errors=5).conn_error_rate == 1.0


def test_pool_sums_counts_and_weighs_response_times() -> None:
    pooled = canary.pool([traffic(300, 3, rtime=10), traffic(100, 1, rtime=50), Window()])
    assert (pooled.requests, pooled.errors_5xx) == (400, 4)
    assert pooled.rtime_ms == pytest.approx((300 * 10 + 100 * 50) / 400)
    assert canary.pool([]) == Window()


# --- against the old servers ---------------------------------------------------------------


def test_a_server_answering_500_to_a_third_fails() -> None:
    verdict = judge({"web-g2-1": traffic(100, 31)}, CLEAN_OLD, LIMITS)
    assert not verdict.passed and verdict.baseline == OLD_SERVERS
    assert verdict.failed == ["web-g2-1"]
    (judged,) = verdict.judgements
    assert judged.reasons == ("errors 31.0% vs 0.2% on the old servers (margin 2.0%)",)
    assert verdict.summary() == (
        "failed against the old servers (1000 requests):"
        " web-g2-1: errors 31.0% vs 0.2% on the old servers (margin 2.0%)"
    )


def test_a_five_times_slower_server_fails() -> None:
    old = {"web-g1-1": traffic(500, rtime=40)}
    verdict = judge({"web-g2-1": traffic(100, rtime=200)}, old, LIMITS)
    assert not verdict.passed
    assert verdict.judgements[0].reasons == (
        "response time 200 ms vs 40 ms on the old servers (limit 120 ms: 3x, at least 50 ms)",
    )


def test_a_slower_server_within_the_floor_passes() -> None:
    """2 ms against 0.5 ms is 4 times slower, but nobody notices."""
    old = {"web-g1-1": traffic(500, rtime=0.5)}
    assert judge({"web-g2-1": traffic(100, rtime=2)}, old, LIMITS).passed
    assert not judge({"web-g2-1": traffic(100, rtime=51)}, old, LIMITS).passed


def test_a_good_server_passes() -> None:
    new = {"web-g2-1": traffic(100, 0, rtime=12), "web-g2-2": traffic(90, 1, rtime=9)}
    verdict = judge(new, CLEAN_OLD, LIMITS)
    assert verdict.passed and verdict.failed == [] and verdict.insufficient == []
    assert all(not j.reasons for j in verdict.judgements)
    assert verdict.summary() == "passed against the old servers (1000 requests): web-g2-1, web-g2-2"


def test_connection_errors_fail() -> None:
    new = {"web-g2-1": traffic(80, conn=20)}  # 20% of the attempts could not connect
    verdict = judge(new, CLEAN_OLD, LIMITS)
    assert verdict.judgements[0].reasons == (
        "connection errors 20.0% vs 0.0% on the old servers (margin 2.0%)",
    )


def test_a_server_refusing_every_connection_fails() -> None:
    """Redispatched elsewhere, it answers nothing: its attempts are its connection errors."""
    verdict = judge({"web-g2-1": traffic(0, conn=40)}, CLEAN_OLD, LIMITS)
    assert verdict.failed == ["web-g2-1"]
    assert verdict.judgements[0].reasons == (
        "connection errors 100.0% vs 0.0% on the old servers (margin 2.0%)",
    )


def test_a_bad_baseline_does_not_fail_a_new_server_as_bad() -> None:
    """The old servers fail as often (the database is down, say): not the new image's doing."""
    old = {"web-g1-1": traffic(200, 60), "web-g1-2": traffic(100, 30)}  # 30% 5xx
    assert judge({"web-g2-1": traffic(100, 30)}, old, LIMITS).passed
    assert judge({"web-g2-1": traffic(100, 32)}, old, LIMITS).passed  # within the 2% margin
    assert not judge({"web-g2-1": traffic(100, 33)}, old, LIMITS).passed


def test_idle_old_servers_do_not_dilute_the_baseline() -> None:
    old = {"web-g1-1": traffic(100, 10, rtime=20), "web-g1-2": Window()}
    verdict = judge({"web-g2-1": traffic(100, 10, rtime=20)}, old, LIMITS)
    assert verdict.passed
    assert verdict.old.requests == 100


def test_every_reason_is_given() -> None:
    new = {"web-g2-1": traffic(60, 30, rtime=900, conn=40)}
    reasons = judge(new, CLEAN_OLD, LIMITS).judgements[0].reasons
    assert [r.split()[0] for r in reasons] == ["errors", "connection", "response"]


def test_margins_come_from_the_limits() -> None:
    strict = Limits(error_margin=0.0)
    assert not judge({"web-g2-1": traffic(100, 1)}, CLEAN_OLD, strict).passed
    lax = Limits(error_margin=0.5)
    assert judge({"web-g2-1": traffic(100, 40)}, CLEAN_OLD, lax).passed


# --- without a baseline --------------------------------------------------------------------


@pytest.mark.parametrize(
    "old",
    [
        pytest.param({}, id="first-deploy"),
        pytest.param({"web-g1-1": traffic(5)}, id="old-servers-too-idle"),
    ],
)
def test_no_baseline_means_absolute_limits(old: dict[str, Window]) -> None:
    good = judge({"web-g2-1": traffic(100, 4, rtime=900)}, old, LIMITS)
    assert good.passed and good.baseline == ABSOLUTE_LIMITS
    bad = judge(
        {"web-g2-1": traffic(100, 6, rtime=1500), "web-g2-2": traffic(90, conn=10)}, old, LIMITS
    )
    assert bad.failed == ["web-g2-1", "web-g2-2"]
    assert bad.judgements[0].reasons == (
        "errors 6.0% above the limit 5.0%",
        "response time 1500 ms above the limit 1000 ms",
    )
    assert bad.judgements[1].reasons == ("connection errors 10.0% above the limit 5.0%",)
    took = sum(w.requests for w in old.values())
    assert bad.summary().startswith(
        f"failed against absolute limits (the old servers took {took} requests, fewer than 20):"
        " web-g2-1: errors 6.0% above the limit 5.0%, response time"
    )


def test_old_servers_with_no_answers_fall_back_to_the_absolute_response_time() -> None:
    old = {"web-g1-1": traffic(0, conn=50)}  # a baseline of attempts, but no response time
    assert judge({"web-g2-1": traffic(100, rtime=900)}, old, LIMITS).baseline == OLD_SERVERS
    slow = judge({"web-g2-1": traffic(100, rtime=1200)}, old, LIMITS)
    assert slow.judgements[0].reasons == ("response time 1200 ms above the limit 1000 ms",)


# --- too little traffic --------------------------------------------------------------------


def test_a_server_with_too_few_requests_is_not_judged() -> None:
    new = {"web-g2-1": traffic(100), "web-g2-2": traffic(5, 5)}  # 100% 5xx, but only 5
    verdict = judge(new, CLEAN_OLD, LIMITS)
    assert verdict.passed
    assert verdict.insufficient == ["web-g2-2"]
    assert not verdict.judgements[1].failed and verdict.judgements[1].insufficient
    assert verdict.summary() == (
        "passed against the old servers (1000 requests): web-g2-1;"
        " too little traffic to judge web-g2-2 (fewer than 20 requests)"
    )


def test_no_server_with_enough_requests() -> None:
    verdict = judge({"web-g2-1": traffic(3)}, {}, LIMITS)
    assert verdict.passed and verdict.insufficient == ["web-g2-1"]
    assert verdict.summary() == (
        "not judged; too little traffic to judge web-g2-1 (fewer than 20 requests)"
    )


def test_a_failure_and_too_little_traffic_together() -> None:
    verdict = judge({"web-g2-1": traffic(100, 50), "web-g2-2": traffic(1)}, CLEAN_OLD, LIMITS)
    assert verdict.failed == ["web-g2-1"] and verdict.insufficient == ["web-g2-2"]
    assert verdict.summary().endswith(
        "; too little traffic to judge web-g2-2 (fewer than 20 requests)"
    )


# --- limits and records --------------------------------------------------------------------


def test_the_limits_are_the_fleets_canary_config() -> None:
    """One place for the thresholds and their defaults: the config model itself."""
    assert Limits is CanaryConfig and Limits().min_requests == 20


def test_as_dict_is_plain_json() -> None:
    verdict = judge({"web-g2-1": traffic(100, 31, rtime=12.345)}, CLEAN_OLD, LIMITS)
    data = verdict.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["passed"] is False and data["baseline"] == "old servers"
    assert data["old"] == {
        "requests": 1000,
        "attempts": 1000,
        "error_rate": 0.002,
        "conn_error_rate": 0.0,
        "rtime_ms": 10.0,
    }
    assert data["servers"] == [
        {
            "name": "web-g2-1",
            "requests": 100,
            "attempts": 100,
            "error_rate": 0.31,
            "conn_error_rate": 0.0,
            "rtime_ms": 12.3,
            "failed": True,
            "insufficient": False,
            "reasons": ["errors 31.0% vs 0.2% on the old servers (margin 2.0%)"],
        }
    ]
    assert data["limits"]["min_requests"] == 20
    assert data["summary"] == verdict.summary()


def test_answers_replayed_on_another_server_are_errors() -> None:
    """HAProxy replays a GET answered 500 on another server (retry-on 500): the bad answer is
    not in the server's hrsp_5xx but in its retries; stot counts the attempt. Numbers seen on a
    real HAProxy 2.6 with a server answering 500 to 31% of requests."""
    bad = Window(requests=121, retries=58, redispatches=58, sessions=179, rtime_ms=1)
    assert bad.attempts == 179 and bad.error_rate == pytest.approx(58 / 179)
    verdict = judge({"web-g2-1": bad}, CLEAN_OLD, LIMITS)
    assert verdict.failed == ["web-g2-1"]
    assert verdict.judgements[0].reasons[0].startswith("errors 32.4% vs")

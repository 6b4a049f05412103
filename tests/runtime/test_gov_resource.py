"""Resource handles (Contract B's per-call API): binding, rule swaps, tokens, async waiting."""

from __future__ import annotations

import asyncio

import pytest
from gov_helpers import FakeClock, MakeEngine, clock, make_engine

from instpy.runtime.engine import MAX_HANDLES, Engine
from instpy.runtime.entry import Blocked
from instpy.runtime.governance import Resource, enter_async, parse_config

__all__ = ["clock", "make_engine"]

FLOW_2 = "rules:\n  - resource: r\n    flow: {qps: 2}\n"


def totals(eng: Engine, name: str) -> tuple[int, int, int, int]:
    for resource, stats in eng.statistics().resources():
        if resource == name:
            return stats.totals()
    raise AssertionError(f"no statistics for {name}")


def run(res: Resource, error: object = None) -> object:
    token = res.enter(None)
    if token.__class__ is not Blocked:
        res.exit(token, error)
    return token


def test_the_same_handle_for_the_same_resource_and_traffic(make_engine: MakeEngine) -> None:
    eng = make_engine(FLOW_2)
    assert eng.resource("r", "internal") is eng.resource("r", "internal")
    assert eng.resource("r", "internal") is not eng.resource("r", "outbound")
    with pytest.raises(ValueError, match="traffic must be one of"):
        eng.resource("r", "sideways")


def test_idle_handle_counts_nothing_and_any_exit_ignores_its_token(
        make_engine: MakeEngine) -> None:
    eng = make_engine(FLOW_2)
    res = eng.resource("other", "internal")
    assert not res.active
    token = res.enter(None)
    res.exit(token, None)
    # A rule swap between enter and exit: the new plan's exit takes the idle token as nothing.
    eng.load_text("rules:\n  - resource: other\n    flow: {qps: 5}\n")
    assert res.active
    res.exit(token, None)
    assert totals(eng, "other") == (0, 0, 0, 0)


def test_handle_counts_passes_completions_errors_and_rt(make_engine: MakeEngine,
                                                        clock: FakeClock) -> None:
    eng = make_engine("metrics: {all_resources: true}\n")
    res = eng.resource("stats-only", "internal")
    assert res.active
    token = res.enter(None)
    clock.advance(7)
    res.exit(token, ValueError("boom"))
    token = res.enter(None)
    res.exit(token, True)
    token = res.enter(None)
    res.exit(token, False)
    passed, completed, errors, rt_ns = totals(eng, "stats-only")
    assert (passed, completed, errors) == (3, 3, 2)
    assert rt_ns == 7_000_000
    assert eng.statistics().stats("stats-only").inflight == 0


def test_flow_limit_through_a_handle_and_its_fallback(make_engine: MakeEngine,
                                                      clock: FakeClock) -> None:
    eng = make_engine(FLOW_2 + "    fallback: {status: 503, body: busy}\n")
    res = eng.resource("r", "inbound")
    assert [run(res).__class__ is Blocked for _ in range(3)] == [False, False, True]
    blocked = res.enter(None)
    assert isinstance(blocked, Blocked) and blocked.family == "flow"
    assert blocked.http_fallback().status == 503
    clock.advance(1000)
    assert run(res).__class__ is not Blocked


def test_handle_follows_rule_swaps_without_being_fetched_again(make_engine: MakeEngine) -> None:
    eng = make_engine(FLOW_2)
    res = eng.resource("r", "internal")
    assert [run(res).__class__ is Blocked for _ in range(3)] == [False, False, True]
    eng.load_text("rules:\n  - resource: r\n    flow: {qps: 10}\n")
    assert run(res).__class__ is not Blocked
    eng.load_text("rules: []\nmetrics: {inbound: false}\n")
    assert not res.active
    assert run(res).__class__ is not Blocked


def test_a_call_straddling_a_swap_exits_into_the_counters_it_entered(
        make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: r\n    concurrency: {max: 1}\n")
    res = eng.resource("r", "internal")
    token = res.enter(None)
    assert res.enter(None).__class__ is Blocked  # one in flight already
    # Now a hot-param rule too: the plan leaves the lean path; the call in flight
    # exits through the new plan and frees its slot.
    eng.load_text("rules:\n  - resource: r\n    concurrency: {max: 1}\n"
                  "    hot_param: {from: arg, name: uid, qps: 100}\n")
    res.exit(token, None)
    assert eng.statistics().stats("r").inflight == 0
    token = res.enter(lambda source, name: "u1")
    assert token.__class__ is not Blocked
    eng.load_text("rules:\n  - resource: r\n    concurrency: {max: 1}\n")
    res.exit(token, None)  # an entry of the hot-param plan, back to that plan
    assert eng.statistics().stats("r").inflight == 0
    assert run(res).__class__ is not Blocked


def test_throttled_handle_sleeps_sync_and_awaits_async(make_engine: MakeEngine,
                                                       clock: FakeClock) -> None:
    eng = make_engine("rules:\n  - resource: t\n"
                      "    flow: {qps: 10, behavior: throttling, max_queueing: 1s}\n")
    res = eng.resource("t", "internal")
    run(res)
    run(res)
    assert clock.slept and abs(clock.slept[-1] - 0.1) < 1e-6

    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def twice() -> None:
        for _ in range(2):
            token = await enter_async(res)
            assert token.__class__ is not Blocked
            res.exit(token, None)

    real = asyncio.sleep
    asyncio.sleep = fake_sleep  # type: ignore[assignment]
    try:
        asyncio.run(twice())
    finally:
        asyncio.sleep = real
    assert waits and all(w > 0 for w in waits)
    assert len(clock.slept) == 1  # the coroutine never slept synchronously


def test_handles_past_the_cap_still_follow_swaps_while_kept(clock: FakeClock) -> None:
    eng = Engine(parse_config(FLOW_2, "t.yaml"), clock=clock, sleep=clock.sleep)
    try:
        for i in range(MAX_HANDLES):
            eng.resource(f"filler-{i}", "outbound")
        extra = eng.resource("r", "outbound")
        assert extra is not eng.resource("r", "outbound")  # not cached past the cap
        assert extra.active
        eng.load_text("rules: []\n")
        assert not extra.active
    finally:
        eng.close()

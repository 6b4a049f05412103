"""Hot parameters: per-value buckets with burst, item overrides, concurrency, LRU bound."""

from __future__ import annotations

from gov_helpers import FakeClock, MakeEngine, clock, make_engine

from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.hotspot.check import HotQpsCheck, Lookup

RULE = ('rules:\n  - resource: "GET /search"\n'
        '    hot_param: {from: query, name: uid, qps: 5, burst: 2, items: {"vip-1": 100}}\n')


def calls(eng: Engine, uid: object, n: int) -> int:
    seen: list[tuple[str, str]] = []

    def lookup(source: str, name: str) -> object:
        seen.append((source, name))
        return uid

    passed = 0
    for _ in range(n):
        res = eng.entry("GET /search", "inbound", lookup)
        if isinstance(res, Entry):
            passed += 1
            res.exit()
    assert set(seen) <= {("query", "uid")}
    return passed


def test_bucket_holds_qps_plus_burst_then_refills(make_engine: MakeEngine,
                                                   clock: FakeClock) -> None:
    eng = make_engine(RULE)
    assert calls(eng, "u1", 20) == 7  # 5 + burst 2
    assert calls(eng, "u2", 20) == 7  # another value has its own bucket
    clock.advance(1000)
    assert calls(eng, "u1", 20) == 5  # refilled 5 per second
    clock.advance(200)
    assert calls(eng, "u1", 20) == 1


def test_items_override_and_missing_value_passes(make_engine: MakeEngine) -> None:
    eng = make_engine(RULE)
    assert calls(eng, "vip-1", 150) == 102
    assert calls(eng, None, 50) == 50  # no value: the rule does not apply


def test_block_carries_value(make_engine: MakeEngine) -> None:
    eng = make_engine(RULE)
    calls(eng, 42, 7)
    res = eng.entry("GET /search", "inbound", lambda s, n: 42)
    assert isinstance(res, Blocked) and res.family == "hot_param" and res.value == "42"


def test_lookup_is_lazy_and_failures_fail_open(make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: r\n    flow: {qps: 5}\n")

    def explode(source: str, name: str) -> object:
        raise AssertionError("no hot-param rule, so no lookup")

    assert isinstance(eng.entry("r", "inbound", explode), Entry)
    eng2 = make_engine(RULE)

    def broken(source: str, name: str) -> object:
        raise KeyError(name)

    assert calls(eng2, None, 1) == 1
    assert isinstance(eng2.entry("GET /search", "inbound", broken), Entry)


def test_concurrency_per_value(make_engine: MakeEngine) -> None:
    eng = make_engine('rules:\n  - resource: r\n    hot_param: {from: header, name: x-user, '
                      'concurrency: 1, items: {"ops": 2}}\n')
    a = eng.entry("r", "inbound", lambda s, n: "alice")
    assert isinstance(a, Entry)
    assert isinstance(eng.entry("r", "inbound", lambda s, n: "alice"), Blocked)
    assert isinstance(eng.entry("r", "inbound", lambda s, n: "bob"), Entry)
    ops = [eng.entry("r", "inbound", lambda s, n: "ops") for _ in range(3)]
    assert [isinstance(o, Entry) for o in ops] == [True, True, False]
    a.exit()
    assert isinstance(eng.entry("r", "inbound", lambda s, n: "alice"), Entry)


def test_lru_stays_bounded(make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: r\n    hot_param: {from: arg, name: sku, qps: 1, "
                      "max_tracked: 100}\n")
    def sku(i: int) -> Lookup:
        return lambda source, name: f"sku-{i}"

    for i in range(5000):
        res = eng.entry("r", "internal", sku(i))
        assert isinstance(res, Entry)
        res.exit()
    check = eng._snapshot.plans["r"].hot
    assert isinstance(check, HotQpsCheck)
    assert len(check.tracked) == 100
    assert "sku-4999" in check.tracked and "sku-0" not in check.tracked


__all__ = ["clock", "make_engine"]  # fixtures used by name

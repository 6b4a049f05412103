"""System adaptive protection: inbound only, ceilings, CPU with and without BBR."""

from __future__ import annotations

from gov_helpers import FakeClock, MakeEngine, clock, make_engine

from instpy.runtime.entry import Blocked, Entry


def test_inbound_concurrency_ceiling_applies_to_inbound_only(make_engine: MakeEngine) -> None:
    eng = make_engine("system: {concurrency: 2}\n")
    held = [eng.entry("GET /a"), eng.entry("GET /b")]
    assert all(isinstance(h, Entry) for h in held)
    blocked = eng.entry("GET /c")
    assert isinstance(blocked, Blocked) and blocked.family == "system"
    assert blocked.value == ("concurrency", 2)
    assert isinstance(eng.entry("GET /c", "outbound"), Entry)
    assert isinstance(eng.entry("mod:f", "internal"), Entry)
    assert blocked.http_fallback().status == 429


def test_inbound_qps_ceiling(make_engine: MakeEngine, clock: FakeClock) -> None:
    eng = make_engine("system: {qps: 3}\n")
    results = []
    for i in range(5):
        res = eng.entry(f"GET /{i}")
        results.append(isinstance(res, Entry))
        if isinstance(res, Entry):
            res.exit()
    assert results == [True, True, True, False, False]
    clock.advance(1000)
    assert isinstance(eng.entry("GET /0"), Entry)


def test_avg_rt_ceiling(make_engine: MakeEngine, clock: FakeClock) -> None:
    eng = make_engine("system: {avg_rt: 50ms}\n")
    res = eng.entry("GET /a")
    assert isinstance(res, Entry)
    clock.advance(80)
    res.exit()
    blocked = eng.entry("GET /a")
    assert isinstance(blocked, Blocked) and blocked.value[0] == "avg_rt_ms"  # type: ignore[index]


def test_cpu_without_bbr_blocks_above_threshold(make_engine: MakeEngine) -> None:
    hot = make_engine("system: {cpu: {threshold: 0.8, bbr: false}}\n", cpu=0.9)
    res = hot.entry("GET /a")
    assert isinstance(res, Blocked) and res.value == ("cpu", 0.9)
    cool = make_engine("system: {cpu: {threshold: 0.8, bbr: false}}\n", cpu=0.5)
    assert isinstance(cool.entry("GET /a"), Entry)


def test_cpu_with_bbr_blocks_only_beyond_capacity(make_engine: MakeEngine,
                                                  clock: FakeClock) -> None:
    eng = make_engine("system: {cpu: {threshold: 0.8}}\n", cpu=0.95)
    # Teach the estimate: 20 calls complete within one second, each taking 100 ms,
    # so capacity = 20/s x 0.1 s = 2 in flight.
    for _ in range(20):
        res = eng.entry("GET /a")
        assert isinstance(res, Entry)
        clock.advance(100)
        res.exit()
        clock.advance(-90)
    first, second = eng.entry("GET /a"), eng.entry("GET /a")
    assert isinstance(first, Entry)  # a single request is always admitted
    assert isinstance(second, Entry)  # 1 in flight <= capacity
    third = eng.entry("GET /a")
    assert isinstance(third, Entry)  # 2 in flight <= capacity 2
    fourth = eng.entry("GET /a")
    assert isinstance(fourth, Blocked) and fourth.value == ("cpu_bbr", 0.95)


def test_unruled_inbound_resources_are_counted_when_system_rules_exist(
        make_engine: MakeEngine) -> None:
    eng = make_engine("system: {qps: 100}\n")
    assert eng.wants("GET /x") and eng.wants("GET /x", "inbound")
    assert not eng.wants("GET /x", "outbound")
    res = eng.entry("GET /x")
    assert isinstance(res, Entry)
    res.exit()
    assert 'instpy_requests_passed_total{resource="GET /x"} 1' in eng.metrics_text()


__all__ = ["clock", "make_engine"]  # fixtures used by name

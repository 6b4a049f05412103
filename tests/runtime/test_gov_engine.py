"""The Contract B facade: entry/exit, async waiting, wants, subscribe, metrics."""

from __future__ import annotations

import asyncio
import itertools
import time
import urllib.request

import pytest
from gov_helpers import MakeEngine, clock, make_engine

from instpy.runtime import governance
from instpy.runtime.config.document import GovernanceConfig
from instpy.runtime.engine import Engine
from instpy.runtime.entry import IDLE_ENTRY, Blocked, Entry
from instpy.runtime.governance import parse_config


def passed(res: Entry | Blocked) -> Entry:
    assert isinstance(res, Entry), res
    return res


def test_unruled_resource_gets_the_shared_idle_entry(make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: r\n    flow: {qps: 1}\n")
    assert eng.entry("other", "internal") is IDLE_ENTRY
    assert eng.entry("other", "outbound") is IDLE_ENTRY
    assert not eng.wants("other", "internal")
    assert eng.wants("r")
    IDLE_ENTRY.exit(error=True)


def test_inbound_endpoints_keep_statistics_unless_switched_off(make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: r\n    flow: {qps: 1}\n")
    entry = eng.entry("GET /other", "inbound")
    assert isinstance(entry, Entry) and entry is not IDLE_ENTRY
    entry.exit()
    assert "GET /other" in eng.metrics_text()
    eng.load_text("metrics: {inbound: false}\n")
    assert eng.entry("GET /else", "inbound") is IDLE_ENTRY


def test_subscribe_called_after_each_swap(make_engine: MakeEngine) -> None:
    eng = make_engine()
    seen: list[GovernanceConfig] = []
    eng.subscribe(seen.append)
    eng.load_text("rules:\n  - resource: r\n    flow: {qps: 1}\n")
    assert len(seen) == 1 and seen[0].rules[0].resource == "r"
    assert not eng.apply_text("rules: 3\n", "x.yaml")
    assert len(seen) == 1


def test_metrics_text(make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: 'GET /a\"b'\n    flow: {qps: 1}\n"
                      "  - resource: svc\n    circuit_breaker: {strategy: error_count, "
                      "threshold: 1, min_requests: 1}\n")
    passed(eng.entry('GET /a"b')).exit(error=True)
    eng.entry('GET /a"b')
    passed(eng.entry("svc", "outbound")).exit(error=True)
    text = eng.metrics_text()
    assert 'instpy_requests_passed_total{resource="GET /a\\"b"} 1' in text
    assert 'instpy_requests_blocked_total{resource="GET /a\\"b",family="flow"} 1' in text
    assert 'instpy_requests_errors_total{resource="GET /a\\"b"} 1' in text
    assert 'instpy_circuit_breaker_state{resource="svc"} 1' in text
    assert "# TYPE instpy_requests_in_flight gauge" in text


def test_all_resources_keeps_statistics_for_unruled(make_engine: MakeEngine) -> None:
    eng = make_engine("metrics: {all_resources: true}\n")
    assert eng.wants("anything", "internal")
    res = passed(eng.entry("anything", "internal"))
    assert res is not IDLE_ENTRY
    res.exit()
    assert 'instpy_requests_completed_total{resource="anything"} 1' in eng.metrics_text()


def test_metrics_listener_on_loopback() -> None:
    eng = Engine(parse_config("rules:\n  - resource: r\n    flow: {qps: 5}\n"), metrics_port=0)
    try:
        from instpy.runtime.metrics.server import MetricsServer
        server = eng._metrics_server
        assert isinstance(server, MetricsServer)
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read().decode()
        assert "instpy_requests_passed_total" in body
    finally:
        eng.close()


def test_entry_async_waits_without_blocking_the_loop() -> None:
    eng = Engine(parse_config("rules:\n  - resource: r\n    flow: {qps: 20, "
                              "behavior: throttling, max_queueing: 1s}\n"))
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    async def one() -> float:
        res = await eng.entry_async("r", "inbound")
        assert isinstance(res, Entry)
        res.exit()
        return time.monotonic()

    async def main() -> list[float]:
        stop = asyncio.Event()
        tick_task = asyncio.create_task(ticker(stop))
        done = await asyncio.gather(*(one() for _ in range(6)))
        stop.set()
        await tick_task
        return sorted(done)

    times = asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.03  # paced ~50 ms apart
    assert ticks >= 20  # the loop kept running while they waited (~250 ms)


def test_sync_entry_sleeps_for_throttling(make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: r\n    flow: {qps: 10, behavior: throttling}\n")
    passed(eng.entry("r")).exit()
    res = eng.entry("r")
    assert isinstance(res, Entry)


def test_default_engine_is_lazy_and_single(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: object) -> None:
    path = f"{tmp_path}/g.yaml"
    with open(path, "w") as fh:
        fh.write("rules:\n  - resource: r\n    flow: {qps: 0}\n")
    monkeypatch.setenv("INSTPY_GOVERNANCE", path)
    monkeypatch.delenv("INSTPY_METRICS_PORT", raising=False)
    monkeypatch.setattr(governance, "_engine", [])
    eng = governance.engine()
    try:
        assert governance.engine() is eng
        assert isinstance(eng.entry("r"), Blocked)
    finally:
        eng.close()


__all__ = ["clock", "make_engine"]  # fixtures used by name

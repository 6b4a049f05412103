"""Flow control: reject, warm-up and throttling, with a manual clock; one real-time test."""

from __future__ import annotations

import threading
import time
from collections import Counter

from gov_helpers import FakeClock, MakeEngine, clock, make_engine

from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.flow.rule import FlowRule
from instpy.runtime.governance import parse_config


def passes(eng: Engine, resource: str, n: int) -> int:
    count = 0
    for _ in range(n):
        res = eng.entry(resource, "internal")
        if isinstance(res, Entry):
            res.exit()
            count += 1
    return count


def test_reject_allows_qps_per_second_window(make_engine: MakeEngine, clock: FakeClock) -> None:
    eng = make_engine("rules:\n  - resource: r\n    flow: {qps: 5}\n")
    assert passes(eng, "r", 8) == 5
    blocked = eng.entry("r", "internal")
    assert isinstance(blocked, Blocked)
    assert blocked.family == "flow"
    assert isinstance(blocked.rule, FlowRule) and blocked.rule.qps == 5
    assert blocked.value == 5
    clock.advance(1000)
    assert passes(eng, "r", 8) == 5


def test_reject_window_slides_by_half_seconds(make_engine: MakeEngine, clock: FakeClock) -> None:
    clock.now = 2_000_000_000_000  # on a bucket boundary
    eng = make_engine("rules:\n  - resource: r\n    flow: {qps: 4}\n")
    assert passes(eng, "r", 2) == 2
    clock.advance(500)
    assert passes(eng, "r", 5) == 2  # 2 still counted from the previous half second
    clock.advance(500)
    assert passes(eng, "r", 5) == 2  # the first half expired, the second still counts


def test_zero_qps_blocks_everything(make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: r\n    flow: {qps: 0}\n")
    assert passes(eng, "r", 3) == 0


def test_warm_up_starts_at_qps_over_cold_factor(make_engine: MakeEngine,
                                                clock: FakeClock) -> None:
    eng = make_engine("rules:\n  - resource: r\n    flow: {qps: 90, behavior: warm_up, "
                      "warm_up_period: 10s, cold_factor: 3}\n")
    clock.now = 3_000_000_000_000
    first = passes(eng, "r", 200)
    assert first == 30  # 90 / 3 while cold
    rates = []
    for _ in range(30):
        clock.advance(1000)
        rates.append(passes(eng, "r", 200))
    assert rates == sorted(rates)  # sustained traffic warms the resource up monotonically
    assert rates[-1] == 90
    assert 30 < rates[3] < 90


def test_throttling_paces_and_blocks_past_max_queueing(make_engine: MakeEngine,
                                                      clock: FakeClock) -> None:
    eng = make_engine("rules:\n  - resource: r\n    flow: {qps: 10, behavior: throttling, "
                      "max_queueing: 250ms}\n")
    results = []
    for _ in range(5):
        res = eng.entry("r", "internal")
        results.append(res)
        clock.now -= int(sum(clock.slept) * 1e9)  # all five arrive at the same instant
        clock.slept.clear()
    kinds = [isinstance(r, Entry) for r in results]
    assert kinds == [True, True, True, False, False]  # waits of 0, 100, 200 ms; 300 > 250
    blocked = results[3]
    assert isinstance(blocked, Blocked) and blocked.value == 300.0


def test_unchanged_rule_keeps_state_across_reload(make_engine: MakeEngine) -> None:
    text = "rules:\n  - resource: r\n    flow: {qps: 2}\n"
    eng = make_engine(text)
    assert passes(eng, "r", 2) == 2
    eng.load_text(text + "  - resource: other\n    concurrency: {max: 1}\n")
    assert passes(eng, "r", 2) == 0  # the window is the resource's, not the rule's


def test_real_threads_every_second_passes_98_to_100() -> None:
    """100 QPS threshold, 200 attempts per second from 8 threads, for about 4 seconds."""
    eng = Engine(parse_config("rules:\n  - resource: hot\n    flow: {qps: 100}\n"))
    stamps: list[int] = []
    lock = threading.Lock()
    start = time.monotonic()
    # Start just after a second boundary so the run covers three whole aligned seconds.
    time.sleep(1.0 - start % 1.0 + 0.01)
    deadline = time.monotonic() + 4.0

    def worker(offset: float) -> None:
        time.sleep(offset)
        next_at = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            res = eng.entry("hot", "internal")
            if isinstance(res, Entry):
                t = res.start_ns  # the engine's own timestamp: the slice it counted in
                res.exit()
                with lock:
                    stamps.append(t)
            next_at += 0.04  # 8 threads x 25/s = 200 attempts per second
            time.sleep(max(0.0, next_at - time.monotonic()))

    threads = [threading.Thread(target=worker, args=(i * 0.005,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    per_second = Counter(s // 1_000_000_000 for s in stamps)
    seconds = sorted(per_second)
    whole = seconds[1:-1]  # the first and last seconds are partial
    assert len(whole) >= 2
    counts = [per_second[s] for s in whole]
    assert all(98 <= c <= 100 for c in counts), counts


__all__ = ["clock", "make_engine"]  # fixtures used by name

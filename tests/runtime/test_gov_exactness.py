"""Lock-free counting stays exact: threads racing with forced thread switches never pass more
than a flow window's `qps` or an isolation `max`; a breaker counts every racing completion once,
opens exactly when its threshold is crossed, and half-open admits only its probes."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from instpy.runtime.circuitbreaker.check import CLOSED, HALF_OPEN, OPEN, BreakerCheck
from instpy.runtime.circuitbreaker.rule import BreakerRule
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Entry
from instpy.runtime.events import StateChange
from instpy.runtime.governance import parse_config

BUCKET_NS = 500_000_000


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def hammer(eng: Engine, resource: str, seconds: float, hold: bool = False) -> list[int]:
    stamps: list[int] = []
    peak = [0]
    inside = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            res = eng.entry(resource, "internal")
            if isinstance(res, Entry):
                with lock:
                    stamps.append(res.start_ns)
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                if hold:
                    time.sleep(0.0005)
                with lock:
                    inside[0] -= 1
                res.exit()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [*stamps, -peak[0]]


@pytest.mark.usefixtures("frequent_switches")
def test_flow_window_never_exceeds_qps_under_racing_threads() -> None:
    eng = Engine(parse_config("rules:\n  - resource: r\n    flow: {qps: 300}\n"))
    stamps = hammer(eng, "r", 1.6)[:-1]
    per_bucket = Counter(s // BUCKET_NS for s in stamps)
    buckets = sorted(per_bucket)
    windows = [per_bucket[b] + per_bucket.get(b - 1, 0) for b in range(buckets[0],
                                                                     buckets[-1] + 2)]
    assert max(windows) <= 300, per_bucket  # every window: a bucket and the one before it
    assert max(windows) >= 290, per_bucket  # and the limit is reached, not starved


@pytest.mark.usefixtures("frequent_switches")
def test_isolation_never_exceeds_max_under_racing_threads() -> None:
    eng = Engine(parse_config("rules:\n  - resource: r\n    concurrency: {max: 3}\n"
                              "    flow: {qps: 1000000}\n"))
    result = hammer(eng, "r", 0.8, hold=True)
    assert -result[-1] <= 3
    assert -result[-1] == 3
    assert len(result) > 10
    text = eng.metrics_text()
    assert 'instpy_requests_in_flight{resource="r"} 0' in text


class TickClock:
    """A shared clock that moves `step_ms` on every read, atomically (itertools.count): racing
    threads then cross breaker slots while they count."""

    def __init__(self, step_ms: float) -> None:
        self._ticks = itertools.count(int(1000 * 1e9), int(step_ms * 1e6))
        self.offset = 0

    def __call__(self) -> int:
        return next(self._ticks) + self.offset


def race(eng: Engine, calls: list[object]) -> None:
    """8 threads, each completing its share of `calls` (the `error` passed to exit)."""

    def worker(share: list[object]) -> None:
        for error in share:
            res = eng.entry("svc", "outbound")
            assert isinstance(res, Entry)
            res.exit(error=error)

    threads = [threading.Thread(target=worker, args=(calls[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def breaker_engine(rule: str, clock: TickClock) -> tuple[Engine, list[StateChange]]:
    eng = Engine(parse_config(f"rules:\n  - resource: svc\n    circuit_breaker: {rule}\n"),
                 clock=clock)
    changes: list[StateChange] = []
    eng.on_state_change(changes.append)
    return eng, changes


def breaker_of(eng: Engine) -> BreakerCheck:
    plan = eng._snapshot.plans["svc"]
    assert plan.breaker is not None
    return plan.breaker


@pytest.mark.usefixtures("frequent_switches")
def test_error_count_breaker_counts_every_racing_error_once() -> None:
    # 600 calls x 2 clock reads x 0.5 ms cross a 100 ms slot six times: late appends to a slot
    # just rolled past must still count, and none twice.
    clock = TickClock(0.5)
    eng, changes = breaker_engine("{strategy: error_count, threshold: 400, min_requests: 1, "
                                  "window: 1s}", clock)
    race(eng, [True] * 399 + [None] * 201)
    assert breaker_of(eng).window_counts() == (600, 399)
    assert eng.breaker_state("svc") == CLOSED  # one error short: a double count would open
    race(eng, [True])
    assert eng.breaker_state("svc") == OPEN
    assert [(c.previous, c.state, c.value) for c in changes] == [(CLOSED, OPEN, 400)]


@pytest.mark.usefixtures("frequent_switches")
def test_error_ratio_breaker_opens_exactly_when_the_ratio_crosses() -> None:
    clock = TickClock(0.5)
    eng, changes = breaker_engine("{strategy: error_ratio, threshold: 0.5, min_requests: 800, "
                                  "window: 1s}", clock)
    race(eng, [True, None] * 400)  # 400/800 is not above 0.5
    assert breaker_of(eng).window_counts() == (800, 400)
    assert eng.breaker_state("svc") == CLOSED
    race(eng, [True])
    assert eng.breaker_state("svc") == OPEN
    assert len(changes) == 1 and changes[0].value == 401 / 801


@pytest.mark.usefixtures("frequent_switches")
def test_half_open_admits_exactly_the_configured_probes_under_racing_threads() -> None:
    clock = TickClock(0.001)
    eng, changes = breaker_engine("{strategy: error_count, threshold: 1, min_requests: 1, "
                                  "recovery: 1s, probes: 3}", clock)
    race(eng, [True])
    assert eng.breaker_state("svc") == OPEN
    clock.offset += 2_000_000_000
    admitted: list[Entry] = []
    blocked = Counter[str]()
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            res = eng.entry("svc", "outbound")
            with lock:
                if isinstance(res, Entry):
                    admitted.append(res)
                else:
                    blocked[res.family] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 3
    assert blocked == {"circuit_breaker": 397}
    assert eng.breaker_state("svc") == HALF_OPEN
    for entry in admitted:
        entry.exit()
    assert eng.breaker_state("svc") == CLOSED
    assert [(c.previous, c.state) for c in changes] == [
        (CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_a_late_append_to_a_rolled_slot_is_added_to_the_window() -> None:
    # Deterministic replay of the race: a thread appends to the slot another thread just
    # sealed (rolled past); `_late` must add it to the sealed slot and to the current base.
    rule = BreakerRule("svc", "error_count", threshold=5.0, min_requests=1, window_ms=1000.0)
    breaker = BreakerCheck(rule)
    slot_ns = 100_000_000
    assert breaker.count(10 * slot_ns, 0, True) is None
    old = breaker._slot
    assert breaker.count(11 * slot_ns, 0, False) is None  # rolls: `old` is sealed
    assert old.sealed
    old.total.append(0)  # the late thread's append, after the fold read the lengths
    old.bad.append(0)
    assert breaker.window_counts() == (2, 1)  # not counted yet ...
    breaker._late(old)  # ... until the late thread sees `sealed`
    assert breaker.window_counts() == (3, 2)
    breaker._late(old)  # a second late thread with nothing new adds nothing
    assert breaker.window_counts() == (3, 2)
    assert breaker.count(12 * slot_ns, 0, False) is None  # the next roll keeps it
    assert breaker.window_counts() == (4, 2)
    assert breaker.count(19 * slot_ns, 0, False) is None  # slots 10-19
    assert breaker.window_counts() == (5, 2)
    assert breaker.count(20 * slot_ns, 0, False) is None  # slot 10 left, late calls with it
    assert breaker.window_counts() == (4, 0)

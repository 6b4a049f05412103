"""Circuit breakers: each strategy, probes, events; one real-time open/probe/close run."""

from __future__ import annotations

import time

from gov_helpers import FakeClock, MakeEngine, clock, make_engine

from instpy.runtime.circuitbreaker.check import CLOSED, HALF_OPEN, OPEN
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.events import StateChange
from instpy.runtime.governance import parse_config


def call(eng: Engine, clock: FakeClock | None = None, error: object = None,
         rt_ms: float = 1.0) -> bool:
    res = eng.entry("svc", "outbound")
    if isinstance(res, Blocked):
        return False
    if clock is not None:
        clock.advance(rt_ms)
    res.exit(error=error)
    return True


def test_error_ratio_opens_probes_and_closes(make_engine: MakeEngine, clock: FakeClock) -> None:
    eng = make_engine("rules:\n  - resource: svc\n    circuit_breaker: {strategy: error_ratio, "
                      "threshold: 0.5, min_requests: 10, window: 10s, recovery: 5s}\n")
    changes: list[StateChange] = []
    eng.on_state_change(changes.append)
    for _ in range(4):
        call(eng, clock)
    for _ in range(5):
        call(eng, clock, error=RuntimeError())
    assert eng.breaker_state("svc") == CLOSED  # 9 requests: below min_requests
    call(eng, clock, error=True)  # 6/10 failed > 0.5
    assert eng.breaker_state("svc") == OPEN
    blocked = eng.entry("svc", "outbound")
    assert isinstance(blocked, Blocked) and blocked.family == "circuit_breaker"
    assert blocked.value == OPEN
    clock.advance(5000)
    probe = eng.entry("svc", "outbound")
    assert isinstance(probe, Entry)
    assert eng.breaker_state("svc") == HALF_OPEN
    assert isinstance(eng.entry("svc", "outbound"), Blocked)  # one probe at a time
    probe.exit()
    assert eng.breaker_state("svc") == CLOSED
    assert [(c.previous, c.state) for c in changes] == [
        (CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert changes[0].value == 0.6


def test_failed_probe_reopens(make_engine: MakeEngine, clock: FakeClock) -> None:
    eng = make_engine("rules:\n  - resource: svc\n    circuit_breaker: {strategy: error_count, "
                      "threshold: 3, min_requests: 1, recovery: 1s, probes: 2}\n")
    for _ in range(3):
        call(eng, clock, error=True)
    assert eng.breaker_state("svc") == OPEN
    clock.advance(1000)
    assert call(eng, clock)  # probe 1 ok
    assert eng.breaker_state("svc") == HALF_OPEN
    assert call(eng, clock, error=True)  # probe 2 fails
    assert eng.breaker_state("svc") == OPEN
    assert not call(eng, clock)
    clock.advance(1000)
    assert call(eng, clock) and call(eng, clock)
    assert eng.breaker_state("svc") == CLOSED


def test_slow_ratio_uses_max_rt(make_engine: MakeEngine, clock: FakeClock) -> None:
    eng = make_engine("rules:\n  - resource: svc\n    circuit_breaker: {strategy: slow_ratio, "
                      "max_rt: 100ms, threshold: 0.5, min_requests: 4}\n")
    for _ in range(2):
        call(eng, clock, rt_ms=10)
    call(eng, clock, rt_ms=150)
    call(eng, clock, rt_ms=150, error=True)  # errors do not count for slow_ratio
    assert eng.breaker_state("svc") == CLOSED  # 2/4 slow is not above 0.5
    call(eng, clock, rt_ms=150)
    assert eng.breaker_state("svc") == OPEN


def test_old_calls_expire_from_the_window(make_engine: MakeEngine, clock: FakeClock) -> None:
    eng = make_engine("rules:\n  - resource: svc\n    circuit_breaker: {strategy: error_count, "
                      "threshold: 3, min_requests: 1, window: 1s}\n")
    call(eng, clock, error=True)
    call(eng, clock, error=True)
    clock.advance(1500)
    call(eng, clock, error=True)
    assert eng.breaker_state("svc") == CLOSED


def test_reload_keeps_an_open_breaker_open(make_engine: MakeEngine, clock: FakeClock) -> None:
    text = ("rules:\n  - resource: svc\n    circuit_breaker: {strategy: error_count, "
            "threshold: 1, min_requests: 1}\n")
    eng = make_engine(text)
    call(eng, clock, error=True)
    eng.load_text(text + "  - resource: other\n    flow: {qps: 1}\n")
    assert eng.breaker_state("svc") == OPEN


def test_real_time_open_probe_close() -> None:
    eng = Engine(parse_config("rules:\n  - resource: svc\n    circuit_breaker: "
                              "{strategy: error_ratio, threshold: 0.5, min_requests: 4, "
                              "window: 1s, recovery: 200ms}\n"))
    changes: list[str] = []
    eng.on_state_change(lambda c: changes.append(c.state))
    for _ in range(4):
        call(eng, error=True)
    assert eng.breaker_state("svc") == OPEN
    assert not call(eng)
    time.sleep(0.25)
    assert call(eng)  # the probe succeeds
    assert changes == [OPEN, HALF_OPEN, CLOSED]
    assert call(eng)


__all__ = ["clock", "make_engine"]  # fixtures used by name

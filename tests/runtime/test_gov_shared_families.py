"""Rule state shared by the worker processes of one instance (forked workers over the real
segment): pacing at 10 QPS is 10 QPS for the instance, not per worker; the warm-up token store
is one store that every worker drains; one circuit breaker opens on the failures of all the
workers together, and lets exactly one probe through across them; a hot value's token bucket
and its concurrency are the instance's, and a dead worker's per-value slots come back. The
shared checks also decide call by call as the per-process ones do."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from instpy.runtime.circuitbreaker import manager as breaker_manager
from instpy.runtime.circuitbreaker.check import BreakerCheck
from instpy.runtime.circuitbreaker.shared import SharedBreakerCheck
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.flow import manager as flow_manager
from instpy.runtime.flow.check import ThrottlingCheck, WarmUpCheck
from instpy.runtime.governance import parse_config
from instpy.runtime.hotspot import manager as hot_manager
from instpy.runtime.hotspot.check import HotConcurrencyCheck, HotQpsCheck
from instpy.runtime.hotspot.shared import SharedHotConcurrencyCheck, SharedHotQpsCheck
from instpy.runtime.shared import segment as segment_mod
from instpy.runtime.shared.state import StateTable
from instpy.runtime.stat.shared import SharedStore
from instpy.runtime.stat.store import LocalStore

FORK = multiprocessing.get_context("fork")
RULES = """
rules:
  - resource: paced
    flow: {qps: 10, behavior: throttling, max_queueing: 1s}
  - resource: cold
    flow: {qps: 40, behavior: warm_up, warm_up_period: 10s, cold_factor: 4}
  - resource: dep
    circuit_breaker: {strategy: error_count, threshold: 8, min_requests: 8, window: 10s,
                      recovery: 300ms, probes: 1}
  - resource: per_user
    hot_param: {from: arg, name: uid, concurrency: 2}
  - resource: user_rate
    hot_param: {from: arg, name: uid, qps: 5}
"""
WORKERS = 4
WIRED = [True]  # cleared while an engine over a LocalStore is built (see `shm`)


def local_engine(rules: str, clock: Any) -> Engine:
    WIRED.clear()
    try:
        return Engine(parse_config(rules, "governance.yaml"), clock=clock, store=LocalStore(),
                      sleep=lambda s: None)
    finally:
        WIRED.append(True)


def instance_engine(rules: str, clock: Any, directory: Path) -> Engine:
    store = SharedStore(segment_mod.segment_for("flow", str(directory)))
    return Engine(parse_config(rules, "governance.yaml"), clock=clock, store=store,
                  sleep=lambda s: None)


@pytest.fixture
def shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # The engine hands the store's rule states to the family managers (`states=` in
    # Engine._build); the same here where it does not yet.
    for manager in (flow_manager, breaker_manager, hot_manager):
        def wired(rules: object, previous: object, states: StateTable | None = None,
                  build: Any = manager.build) -> object:
            if states is None and WIRED:
                states = StateTable(segment_mod.segment_for("flow", str(tmp_path)))
            return build(rules, previous, states)

        monkeypatch.setattr(manager, "build", wired)
    yield tmp_path
    segment_mod.segment_for("flow", str(tmp_path)).leave()


def shared_engine(directory: Path) -> Engine:
    store = SharedStore(segment_mod.segment_for("flow", str(directory)))
    return Engine(parse_config(RULES, "governance.yaml"), store=store)


def _calls(directory: str, resource: str, until_ns: int,
           out: multiprocessing.Queue[list[int]]) -> None:
    eng = shared_engine(Path(directory))
    starts = []
    while time.monotonic_ns() < until_ns:
        res = eng.entry(resource, "internal")  # a paced call waits its turn in here
        if isinstance(res, Entry):
            starts.append(res.start_ns)
            res.exit()
        else:
            time.sleep(0.002)
    out.put(starts)


def run_workers(directory: Path, resource: str, from_ns: int, until_ns: int) -> list[int]:
    out: multiprocessing.Queue[list[int]] = FORK.Queue()
    procs = [FORK.Process(target=_calls, args=(str(directory), resource, until_ns, out))
             for _ in range(WORKERS)]
    while time.monotonic_ns() < from_ns:
        time.sleep(0.001)
    for p in procs:
        p.start()
    starts = [s for _ in procs for s in out.get(timeout=30)]
    for p in procs:
        p.join(10)
    return sorted(starts)


def test_throttling_paces_the_instance_not_each_worker(shm: Path) -> None:
    eng = shared_engine(shm)
    check = eng._snapshot.plans["paced"].checks[0]
    assert isinstance(check, ThrottlingCheck) and check.state.shared
    begin = time.monotonic_ns() + 100_000_000
    starts = run_workers(shm, "paced", begin, begin + 2_000_000_000)
    # One slot every 100 ms for the instance: about 20 in two seconds (per worker it would
    # be about 80), and never two calls in one slot.
    inside = [s for s in starts if begin <= s < begin + 2_000_000_000]
    print(f"{len(starts)} paced calls from {WORKERS} workers in 2 s")
    assert 8 <= len(inside) <= 22, len(inside)  # (fewer: workers starting late)
    slots = [s // 100_000_000 for s in starts]
    # A wake-up that a loaded host delays may share a slot with the next one, rarely.
    assert len(slots) - len(set(slots)) <= 4, sorted(slots)
    assert check.last_ns is not None  # the parent sees the pacing the workers did


def test_warm_up_is_one_token_store_for_the_instance(shm: Path) -> None:
    eng = shared_engine(shm)
    check = eng._snapshot.plans["cold"].checks[0]
    assert isinstance(check, WarmUpCheck) and check.state.shared
    second = (time.monotonic_ns() // 1_000_000_000 + 1) * 1_000_000_000
    starts = run_workers(shm, "cold", second, second + 1_000_000_000)
    inside = [s for s in starts if second <= s < second + 1_000_000_000]
    print(f"{len(inside)} calls passed a cold resource in its first second, {WORKERS} workers")
    # Cold: 40 / 4 = 10 per second for the instance (per worker it would be 40).
    assert 5 <= len(inside) <= 11, len(inside)
    # The parent made no call, yet its store is the one the workers filled (cold: full).
    assert check.stored > 0.0 and check.state.ints[WarmUpCheck.SEC] > 0


def _fail_twice(directory: str, done: multiprocessing.Queue[int]) -> None:
    eng = shared_engine(Path(directory))
    for _ in range(2):
        res = eng.entry("dep", "internal")
        assert isinstance(res, Entry)
        res.exit(True)  # a failure that is not an exception (an HTTP 5xx, say)
    done.put(os.getpid())


def test_one_breaker_opens_on_the_failures_of_all_workers(shm: Path) -> None:
    eng = shared_engine(shm)
    breaker = eng._snapshot.plans["dep"].checks[0]
    assert isinstance(breaker, SharedBreakerCheck)
    done: multiprocessing.Queue[int] = FORK.Queue()
    procs = [FORK.Process(target=_fail_twice, args=(str(shm), done)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        done.get(timeout=10)
        p.join(10)
    # 2 failures per worker, 8 for the instance: the threshold (no worker alone is near it).
    assert eng.breaker_state("dep") == "open"
    res = eng.entry("dep", "internal")
    assert isinstance(res, Blocked) and res.family == "circuit_breaker"


def _probe(directory: str, go: Any, out: multiprocessing.Queue[bool], release: Any) -> None:
    eng = shared_engine(Path(directory))
    go.wait(10)
    res = eng.entry("dep", "internal")
    out.put(isinstance(res, Entry))
    if isinstance(res, Entry):
        release.wait(10)  # the probe runs while the others try
        res.exit()


def test_half_open_lets_exactly_one_probe_through_across_workers(shm: Path) -> None:
    eng = shared_engine(shm)
    for _ in range(8):
        res = eng.entry("dep", "internal")
        assert isinstance(res, Entry)
        res.exit(True)
    assert eng.breaker_state("dep") == "open"
    time.sleep(0.35)  # past the recovery time: the next call half-opens it
    go, release = FORK.Barrier(WORKERS), FORK.Event()
    out: multiprocessing.Queue[bool] = FORK.Queue()
    procs = [FORK.Process(target=_probe, args=(str(shm), go, out, release))
             for _ in range(WORKERS)]
    for p in procs:
        p.start()
    admitted = [out.get(timeout=10) for _ in procs]
    assert eng.breaker_state("dep") == "half_open"
    release.set()
    for p in procs:
        p.join(10)
    assert admitted.count(True) == 1, admitted
    assert eng.breaker_state("dep") == "closed"  # the probe succeeded, in another worker
    res = eng.entry("dep", "internal")
    assert isinstance(res, Entry)
    res.exit()


@pytest.mark.parametrize("strategy", ["error_ratio", "error_count", "slow_ratio"])
def test_the_shared_breaker_follows_the_per_process_one_call_by_call(
        shm: Path, strategy: str) -> None:
    """Same rule, same calls, same clock: the instance's breaker (in the segment) and a
    process's breaker (LocalStore) are in the same state after every call."""
    threshold = 5 if strategy == "error_count" else 0.5
    extra = ", max_rt: 10ms" if strategy == "slow_ratio" else ""
    rules = (f"rules:\n  - resource: r\n    circuit_breaker: {{strategy: {strategy}, "
             f"threshold: {threshold}, min_requests: 5, window: 2s, recovery: 300ms, "
             f"probes: 2{extra}}}\n")
    now = [10**12]
    engines = [local_engine(rules, lambda: now[0]), instance_engine(rules, lambda: now[0], shm)]
    assert type(engines[0]._snapshot.plans["r"].checks[0]) is BreakerCheck
    assert isinstance(engines[1]._snapshot.plans["r"].checks[0], SharedBreakerCheck)
    rnd = random.Random(strategy)
    states = set()
    for _ in range(3000):
        now[0] += rnd.randint(1, 30) * 1_000_000
        entries = [eng.entry("r", "internal") for eng in engines]
        assert isinstance(entries[0], Entry) == isinstance(entries[1], Entry)
        now[0] += (20 if rnd.random() < 0.45 else 1) * 1_000_000  # slow: over max_rt
        failed = rnd.random() < 0.45
        for entry in entries:
            if isinstance(entry, Entry):
                entry.exit(failed)
        assert engines[0].breaker_state("r") == engines[1].breaker_state("r")
        states.add(engines[1].breaker_state("r"))
    assert {"closed", "open"} <= states  # every strategy crossed its threshold


def user(name: str) -> Any:
    return lambda source, param: name


def _hold_value(directory: str, go: Any, out: multiprocessing.Queue[int]) -> None:
    eng = shared_engine(Path(directory))
    go.wait(10)
    held = [eng.entry("per_user", "internal", user("u1")) for _ in range(2)]
    out.put(sum(isinstance(h, Entry) for h in held))
    time.sleep(60)  # holds what it got until killed


def test_a_values_concurrency_is_the_instances_and_a_dead_workers_slots_come_back(
        shm: Path) -> None:
    eng = shared_engine(shm)
    assert isinstance(eng._snapshot.plans["per_user"].checks[0], SharedHotConcurrencyCheck)
    go = FORK.Barrier(WORKERS)
    out: multiprocessing.Queue[int] = FORK.Queue()
    procs = [FORK.Process(target=_hold_value, args=(str(shm), go, out))
             for _ in range(WORKERS)]
    for p in procs:
        p.start()
    got = [out.get(timeout=10) for _ in procs]
    assert sum(got) == 2, got  # 2 for the instance (per worker it would be 8)
    assert isinstance(eng.entry("per_user", "internal", user("u1")), Blocked)
    other = eng.entry("per_user", "internal", user("u2"))  # another value has its own
    assert isinstance(other, Entry)
    other.exit()
    for p in procs:
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    time.sleep(0.3)  # past the sweep interval; no call meanwhile
    back = [eng.entry("per_user", "internal", user("u1")) for _ in range(3)]
    assert [isinstance(b, Entry) for b in back] == [True, True, False]
    for b in back:
        if isinstance(b, Entry):
            b.exit()


def _rate(directory: str, until_ns: int, out: multiprocessing.Queue[int]) -> None:
    eng = shared_engine(Path(directory))
    passed = 0
    while time.monotonic_ns() < until_ns:
        res = eng.entry("user_rate", "internal", user("u1"))
        if isinstance(res, Entry):
            passed += 1
            res.exit()
        time.sleep(0.001)
    out.put(passed)


def test_a_values_token_bucket_is_the_instances(shm: Path) -> None:
    eng = shared_engine(shm)
    assert isinstance(eng._snapshot.plans["user_rate"].checks[0], SharedHotQpsCheck)
    until = time.monotonic_ns() + 1_000_000_000
    out: multiprocessing.Queue[int] = FORK.Queue()
    procs = [FORK.Process(target=_rate, args=(str(shm), until, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    passed = sum(out.get(timeout=10) for _ in procs)
    for p in procs:
        p.join(10)
    # A full bucket of 5, then 5 per second: about 10 in a second for the instance (per
    # worker it would be about 40).
    print(f"value u1 passed {passed} times in 1 s across {WORKERS} workers")
    assert 5 <= passed <= 11, passed


@pytest.mark.parametrize("mode", ["qps: 3, burst: 1", "concurrency: 2"])
def test_the_shared_hot_check_decides_as_the_per_process_one(shm: Path, mode: str) -> None:
    """Same rule, same calls (20 values, calls held and released at random), same clock."""
    rules = f"rules:\n  - resource: r\n    hot_param: {{from: arg, name: uid, {mode}}}\n"
    now = [10**12]
    engines = [local_engine(rules, lambda: now[0]), instance_engine(rules, lambda: now[0], shm)]
    assert type(engines[0]._snapshot.plans["r"].checks[0]) in (HotQpsCheck, HotConcurrencyCheck)
    assert isinstance(engines[1]._snapshot.plans["r"].checks[0],
                      (SharedHotQpsCheck, SharedHotConcurrencyCheck))
    rnd = random.Random(mode)
    held: list[list[Entry]] = []
    outcomes = set()
    for _ in range(3000):
        now[0] += rnd.randint(1, 80) * 1_000_000
        name = f"u{rnd.randint(1, 20)}"
        pair = [eng.entry("r", "internal", user(name)) for eng in engines]
        admitted = [isinstance(e, Entry) for e in pair]
        assert admitted[0] == admitted[1], name
        outcomes.add(admitted[0])
        if admitted[0]:
            held.append(pair)  # type: ignore[arg-type]
        while held and rnd.random() < 0.5:
            for e in held.pop(rnd.randrange(len(held))):
                e.exit()
    assert outcomes == {True, False}


def test_a_count_taken_for_a_call_a_later_check_refused_is_given_back(shm: Path) -> None:
    rules = """rules:
  - resource: r
    hot_param: {from: arg, name: uid, concurrency: 1}
    circuit_breaker: {strategy: error_count, threshold: 1, min_requests: 1, recovery: 1s}
"""
    now = [10**12]
    eng = instance_engine(rules, lambda: now[0], shm)
    first = eng.entry("r", "internal", user("a"))
    assert isinstance(first, Entry)
    first.exit(True)  # opens the breaker
    refused = eng.entry("r", "internal", user("u1"))  # the hot check counts it, then refused
    assert isinstance(refused, Blocked) and refused.family == "circuit_breaker"
    now[0] += 2_000_000_000  # past recovery: the next call is the probe
    probe = eng.entry("r", "internal", user("u1"))
    assert isinstance(probe, Entry)  # the refused call's count did not stay behind
    probe.exit()

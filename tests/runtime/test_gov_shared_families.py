"""Rule state shared by the worker processes of one instance (forked workers over the real
segment): pacing at 10 QPS is 10 QPS for the instance, not per worker; the warm-up token store
is one store that every worker drains; one circuit breaker opens on the failures of all the
workers together, and lets exactly one probe through across them."""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from instpy.runtime.circuitbreaker import manager as breaker_manager
from instpy.runtime.circuitbreaker.shared import SharedBreakerCheck
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.flow import manager as flow_manager
from instpy.runtime.flow.check import ThrottlingCheck, WarmUpCheck
from instpy.runtime.governance import parse_config
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
"""
WORKERS = 4


@pytest.fixture
def shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # The engine hands the store's rule states to the family managers (`states=` in
    # Engine._build); the same here where it does not yet.
    for manager in (flow_manager, breaker_manager):
        def wired(rules: object, previous: object, states: StateTable | None = None,
                  build: Any = manager.build) -> object:
            if states is None:
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
    assert 15 <= len(inside) <= 22, len(inside)
    slots = [s // 100_000_000 for s in starts]
    assert len(slots) - len(set(slots)) <= 2  # a late wake-up may share a slot with the next
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
    assert 8 <= len(inside) <= 11, len(inside)
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
    engines = [Engine(parse_config(rules, "governance.yaml"), clock=lambda: now[0],
                      store=store, sleep=lambda s: None)
               for store in (LocalStore(), SharedStore(segment_mod.segment_for("flow",
                                                                              str(shm))))]
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
    assert states == {"closed", "open"}  # (half-open lasts within a call: probes, then exit)

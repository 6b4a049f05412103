"""Warm-up and throttling across the worker processes of one instance (forked workers over the
real segment): pacing at 10 QPS is 10 QPS for the instance, not per worker, and the warm-up
token store is one store that every worker drains."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from instpy.runtime.engine import Engine
from instpy.runtime.entry import Entry
from instpy.runtime.flow import manager as flow_manager
from instpy.runtime.flow.check import ThrottlingCheck, WarmUpCheck
from instpy.runtime.governance import parse_config
from instpy.runtime.shared import segment as segment_mod
from instpy.runtime.shared.state import StateTable
from instpy.runtime.stat.shared import SharedStore

FORK = multiprocessing.get_context("fork")
RULES = """
rules:
  - resource: paced
    flow: {qps: 10, behavior: throttling, max_queueing: 1s}
  - resource: cold
    flow: {qps: 40, behavior: warm_up, warm_up_period: 10s, cold_factor: 4}
"""
WORKERS = 4


@pytest.fixture
def shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # The engine hands the store's rule states to the flow manager (`states=` in
    # Engine._build); the same here where it does not yet.
    build = flow_manager.build

    def wired(rules: object, previous: object, states: StateTable | None = None) -> object:
        if states is None:
            states = StateTable(segment_mod.segment_for("flow", str(tmp_path)))
        return build(rules, previous, states)  # type: ignore[arg-type]

    monkeypatch.setattr(flow_manager, "build", wired)
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

"""Counters shared by the worker processes of one instance (stat/shared.py over
shared/segment.py), with real forked processes: flow windows and isolation hold for the whole
instance, whether the engine was built before the fork (preload) or in each worker; a worker
killed while it holds slots, or even the lock, gives them back; `scope: process` keeps a rule's
counters per process."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.errors import ConfigError
from instpy.runtime.governance import parse_config
from instpy.runtime.shared import segment as segment_mod
from instpy.runtime.stat.shared import SharedStats, SharedStore
from instpy.runtime.stat.window import BUCKET_NS, LocalStats

FORK = multiprocessing.get_context("fork")
RULES = """
rules:
  - resource: flow
    flow: {qps: 60}
  - resource: pool
    concurrency: {max: 3}
  - resource: mine
    flow: {qps: 5}
    scope: process
"""


@pytest.fixture
def shm(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    seg = segment_mod.segment_for("test", str(tmp_path))
    seg.leave()  # this process is the last one out: the file and the semaphore go
    assert not os.path.exists(seg.path)


def shared_engine(directory: Path) -> Engine:
    store = SharedStore(segment_mod.segment_for("test", str(directory)))
    return Engine(parse_config(RULES, "governance.yaml"), store=store)


def _hammer(directory: str, seconds: float, preloaded: Engine | None,
            out: multiprocessing.Queue[list[int]]) -> None:
    eng = preloaded if preloaded is not None else shared_engine(Path(directory))
    stamps = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        res = eng.entry("flow", "internal")
        if isinstance(res, Entry):
            stamps.append(res.start_ns)
            res.exit()
        time.sleep(0.0005)
    out.put(stamps)


def run_workers(directory: Path, preloaded: Engine | None, n: int = 4,
                seconds: float = 2.2) -> list[int]:
    out: multiprocessing.Queue[list[int]] = FORK.Queue()
    procs = [FORK.Process(target=_hammer, args=(str(directory), seconds, preloaded, out))
             for _ in range(n)]
    for p in procs:
        p.start()
    stamps = [s for _ in procs for s in out.get(timeout=30)]
    for p in procs:
        p.join(10)
    return stamps


def assert_windows(stamps: list[int], qps: int) -> None:
    """Every window of two adjacent buckets holds at most `qps`; full ones hold `qps`."""
    per_bucket = Counter(s // BUCKET_NS for s in stamps)
    first, last = min(per_bucket), max(per_bucket)
    windows = [per_bucket[b] + per_bucket[b + 1] for b in range(first, last)]
    assert max(windows) <= qps, windows
    inner = windows[1:-1]  # the first and last windows are partly outside the run
    assert inner and all(w == qps for w in inner), windows


@pytest.mark.parametrize("preload", [False, True], ids=["workers-open", "preload-fork"])
def test_a_flow_window_holds_for_all_worker_processes(shm: Path, preload: bool) -> None:
    parent = shared_engine(shm) if preload else None
    stamps = run_workers(shm, parent)
    assert_windows(stamps, 60)


def _hold(directory: str, n: int, ready: multiprocessing.Queue[int]) -> None:
    eng = shared_engine(Path(directory))
    held = [eng.entry("pool", "internal") for _ in range(n)]
    assert all(isinstance(h, Entry) for h in held)
    ready.put(os.getpid())
    time.sleep(60)


def test_a_killed_worker_gives_back_its_slots_within_a_second(shm: Path) -> None:
    eng = shared_engine(shm)
    ready: multiprocessing.Queue[int] = FORK.Queue()
    proc = FORK.Process(target=_hold, args=(str(shm), 3, ready))
    proc.start()
    victim = ready.get(timeout=10)
    res = eng.entry("pool", "internal")
    assert isinstance(res, Blocked) and res.family == "isolation" and res.value == 3
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    while True:
        res = eng.entry("pool", "internal")
        if isinstance(res, Entry):
            break
        assert time.monotonic() - killed < 1.0, "slots not reclaimed within a second"
        time.sleep(0.01)
    reclaimed = time.monotonic() - killed
    held = [res] + [eng.entry("pool", "internal") for _ in range(2)]
    assert isinstance(eng.entry("pool", "internal"), Blocked)  # the limit holds afterwards
    for h in held:
        assert isinstance(h, Entry)
        h.exit()
    proc.join(5)
    print(f"reclaimed in {reclaimed * 1000:.0f} ms")


def _die_holding_the_lock(directory: str, ready: multiprocessing.Queue[int]) -> None:
    seg = segment_mod.segment_for("test", directory)
    seg.lock()
    ready.put(os.getpid())
    time.sleep(60)


def test_a_worker_killed_inside_the_lock_does_not_wedge_the_others(shm: Path) -> None:
    eng = shared_engine(shm)
    ready: multiprocessing.Queue[int] = FORK.Queue()
    proc = FORK.Process(target=_die_holding_the_lock, args=(str(shm), ready))
    proc.start()
    os.kill(ready.get(timeout=10), signal.SIGKILL)
    proc.join(5)
    start = time.monotonic()
    res = eng.entry("flow", "internal")
    assert isinstance(res, Entry)
    res.exit()
    assert time.monotonic() - start < 1.0


def _slot_of(directory: str, preloaded: Engine, out: multiprocessing.Queue[int],
             done: object) -> None:
    store = preloaded.statistics()
    assert isinstance(store, SharedStore)
    res = preloaded.entry("pool", "internal")
    assert isinstance(res, Entry)
    out.put(store.segment.worker)
    res.exit()
    done.wait(10)  # type: ignore[attr-defined]  # alive until all have registered


def test_forked_children_get_their_own_worker_slots(shm: Path) -> None:
    eng = shared_engine(shm)
    store = eng.statistics()
    assert isinstance(store, SharedStore)
    out: multiprocessing.Queue[int] = FORK.Queue()
    done = FORK.Event()
    procs = [FORK.Process(target=_slot_of, args=(str(shm), eng, out, done)) for _ in range(3)]
    for p in procs:
        p.start()
    slots = {out.get(timeout=10) for _ in procs}
    done.set()
    for p in procs:
        p.join(5)
    assert len(slots) == 3 and store.segment.worker not in slots
    assert eng.statistics().stats("pool").inflight == 0


def test_scope_process_keeps_a_rule_per_process(shm: Path) -> None:
    eng = shared_engine(shm)
    store = eng.statistics()
    assert isinstance(store.stats("flow"), SharedStats)
    plan = eng._snapshot.plans["mine"]
    assert type(plan.stats) is LocalStats


def test_scope_is_validated_with_line_and_fix() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config('rules:\n  - resource: x\n    flow: {qps: 1}\n    scope: pod\n', "g.yaml")
    assert err.value.line == 4 and "instance" in str(err.value)
    rules = parse_config('rules:\n  - resource: x\n    flow: {qps: 1}\n', "g.yaml").rules
    assert rules[0].scope == "instance"

"""The per-call paths over the instance's segment (shared/path.py), with real forked workers:
leases of passes never let the instance's window pass more than its limit, and leave at most 2%
of it unused under 2x overload; a forked worker never uses its parent's lease; a window found
full is read again once passes are given back; the good completions each worker counts without
the lock are part of every bad completion's check, until closing starts a fresh window; and each
path decides call by call as the per-process one does."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from operator import length_hint
from pathlib import Path
from typing import Any

import pytest

from instpy.runtime.circuitbreaker.shared import SharedBreakerCheck
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.governance import parse_config
from instpy.runtime.shared import segment as segment_mod
from instpy.runtime.stat.shared import SharedStats, SharedStore
from instpy.runtime.stat.store import LocalStore
from instpy.runtime.stat.window import BUCKET_NS

FORK = multiprocessing.get_context("fork")
WORKERS = 4
Clock = Callable[[], int]


@pytest.fixture
def shm(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    segment_mod.segment_for("paths", str(tmp_path)).leave()


def instance_engine(rules: str, directory: Path, clock: Clock = time.monotonic_ns) -> Engine:
    store = SharedStore(segment_mod.segment_for("paths", str(directory)))
    return Engine(parse_config(rules, "governance.yaml"), clock=clock, store=store,
                  sleep=lambda s: None)


def local_engine(rules: str, clock: Clock) -> Engine:
    return Engine(parse_config(rules, "governance.yaml"), clock=clock, store=LocalStore(),
                  sleep=lambda s: None)


def user(name: str) -> Callable[[str, str], object]:
    return lambda source, param: name


def path_of(eng: Engine, resource: str) -> str:
    return eng._snapshot.plans[resource].enter.__qualname__.split(".")[0]


# -- leases -----------------------------------------------------------------------------------

QPS = 2000
MANY = f"rules:\n  - resource: many\n    flow: {{qps: {QPS}}}\n"


def _paced(directory: str, begin: int, until: int, rate: float,
           out: multiprocessing.Queue[tuple[list[int], int, int]]) -> None:
    granted = [0]
    lease = SharedStats.lease

    def counted(self: SharedStats, passes: int, end_ns: int) -> None:
        granted[0] += 1
        lease(self, passes, end_ns)

    SharedStats.lease = counted  # type: ignore[method-assign]  # in this worker only
    eng = instance_engine(MANY, Path(directory))
    stamps: list[int] = []
    sent = 0
    while (now := time.monotonic_ns()) < until:
        for _ in range(int((now - begin) * rate / 1e9) - sent):
            sent += 1
            res = eng.entry("many", "internal")
            if isinstance(res, Entry):
                stamps.append(res.start_ns)
                res.exit()
        time.sleep(0.0005)
    out.put((stamps, granted[0], sent))


def test_leases_never_pass_more_than_the_limit_and_leave_little_unused(shm: Path) -> None:
    """4 workers offer 2x QPS in all (each at its pace, from the middle of a bucket on, so
    that every bucket is over its share); every window of two buckets passes exactly QPS but
    for what leases left unused: at most 2%."""
    instance_engine(MANY, shm)  # the segment exists before the workers meet on it
    begin = (time.monotonic_ns() // BUCKET_NS + 2) * BUCKET_NS + BUCKET_NS // 2
    until = begin + 3 * 2 * BUCKET_NS
    out: multiprocessing.Queue[tuple[list[int], int, int]] = FORK.Queue()
    procs = [FORK.Process(target=_paced, args=(str(shm), begin, until, 2 * QPS / WORKERS, out))
             for _ in range(WORKERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    stamps = [s for r in results for s in r[0]]
    granted = sum(r[1] for r in results)
    sent = sum(r[2] for r in results)
    per_bucket = Counter(s // BUCKET_NS for s in stamps)
    first, last = begin // BUCKET_NS, (until - 1) // BUCKET_NS
    windows = [per_bucket[b] + per_bucket[b + 1] for b in range(first, last)]
    print(f"{sent} calls offered, {len(stamps)} passed, {granted} leases; windows {windows}")
    assert granted > 0  # the workers did pass calls of their leases
    assert max(windows) <= QPS, windows  # never more than the limit
    inner = windows[1:-1]  # the first and last windows are partly outside the run
    assert min(inner) >= 0.98 * QPS, windows


def _calls(eng: Engine, resource: str, n: int) -> int:
    passed = 0
    for _ in range(n):
        res = eng.entry(resource, "internal")
        if isinstance(res, Entry):
            passed += 1
            res.exit()
    return passed


def _child_calls(eng: Engine, n: int, out: multiprocessing.Queue[int]) -> None:
    out.put(_calls(eng, "r", n))


def test_a_forked_worker_never_uses_its_parents_lease(shm: Path) -> None:
    now = [10**12 + BUCKET_NS // 2]  # one bucket for the whole test
    eng = instance_engine("rules:\n  - resource: r\n    flow: {qps: 400}\n", shm, lambda: now[0])
    assert _calls(eng, "r", 1) == 1
    stats = eng._snapshot.plans["r"].stats
    assert isinstance(stats, SharedStats)
    leased = length_hint(stats._lease[1])
    assert leased > 0  # far from the limit: the first call took a lease
    out: multiprocessing.Queue[int] = FORK.Queue()
    child = FORK.Process(target=_child_calls, args=(eng, 500, out))
    child.start()
    in_child = out.get(timeout=10)
    child.join(10)
    in_parent = _calls(eng, "r", 500)
    # The child found the parent's lease counted, not its own to take.
    assert in_child == 400 - 1 - leased
    assert 1 + in_child + in_parent == 400


def test_a_window_found_full_is_read_again_once_passes_are_given_back(shm: Path) -> None:
    now = [10**12 + BUCKET_NS // 2]
    rules = "rules:\n  - resource: r\n    flow: {qps: 40}\n"
    holder = instance_engine(rules, shm, lambda: now[0])
    eng = instance_engine(rules, shm, lambda: now[0])  # another view of the same counters
    assert _calls(holder, "r", 1) == 1
    holder_stats = holder._snapshot.plans["r"].stats
    assert isinstance(holder_stats, SharedStats)
    leased = length_hint(holder_stats._lease[1])
    assert leased > 0
    assert _calls(eng, "r", 100) == 40 - 1 - leased  # then full: refused without the lock
    holder.load(parse_config(rules, "governance.yaml"))  # a new plan gives the lease back
    assert _calls(eng, "r", 100) == leased


# -- the breaker's lock-free good completions -------------------------------------------------

BREAKER = """rules:
  - resource: dep
    circuit_breaker: {strategy: error_ratio, threshold: 0.5, min_requests: 5, window: 10s,
                      recovery: 300ms, probes: 1}
"""


def _good_calls(eng: Engine, n: int, out: multiprocessing.Queue[int]) -> None:
    for _ in range(n):
        res = eng.entry("dep", "internal")
        assert isinstance(res, Entry)
        res.exit()
    breaker = eng._snapshot.plans["dep"].checks[0]
    assert isinstance(breaker, SharedBreakerCheck)
    out.put(breaker._ints[breaker.mine + 2])  # good calls in its row, not yet in the ring


def _fail_until_open(eng: Engine, limit: int) -> int:
    for n in range(1, limit + 1):
        res = eng.entry("dep", "internal")
        assert isinstance(res, Entry)
        res.exit(True)
        if eng.breaker_state("dep") != "closed":
            return n
    return -1


def test_every_workers_lock_free_good_calls_count_in_a_bad_calls_check(shm: Path) -> None:
    now = [10**12]  # one breaker slot for the whole test
    eng = instance_engine(BREAKER, shm, lambda: now[0])
    assert _calls(eng, "dep", 5) == 5  # min_requests: later good calls may skip the lock
    out: multiprocessing.Queue[int] = FORK.Queue()
    procs = [FORK.Process(target=_good_calls, args=(eng, 20, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    unlocked = [out.get(timeout=10) for _ in procs]
    for p in procs:
        p.join(10)
    assert unlocked == [19] * WORKERS  # each worker's first good call took the lock
    # 85 good calls in the window: the ratio crosses 0.5 with the 86th failure, as one
    # process's breaker would have it.
    assert _fail_until_open(eng, 200) == 86
    # Closing starts a fresh window: the rows' good calls from before count no more.
    now[0] += 400_000_000
    probe = eng.entry("dep", "internal")
    assert isinstance(probe, Entry)
    probe.exit()
    assert eng.breaker_state("dep") == "closed"
    assert _fail_until_open(eng, 50) == 5  # 5 of 5 failed


# -- per-value concurrency ---------------------------------------------------------------------

HELD = """rules:
  - resource: r
    hot_param: {from: arg, name: uid, concurrency: 1}
    circuit_breaker: {strategy: error_count, threshold: 1, min_requests: 1, recovery: 1s}
"""


def test_a_count_the_generic_path_reserved_for_a_refused_call_comes_back(shm: Path) -> None:
    """While the breaker is open calls take the plan's generic path, whose hot check counts
    a value before the breaker refuses the call; when another worker closes the breaker, the
    next call here takes the lean way and must still give that count back."""
    now = [10**12]
    here = instance_engine(HELD, shm, lambda: now[0])
    other = instance_engine(HELD, shm, lambda: now[0])  # another worker, as far as rules go
    assert path_of(here, "r") == "hot_path"
    first = here.entry("r", "internal", user("a"))
    assert isinstance(first, Entry)
    first.exit(True)  # opens the instance's breaker
    refused = here.entry("r", "internal", user("u1"))
    assert isinstance(refused, Blocked) and refused.family == "circuit_breaker"
    now[0] += 2_000_000_000  # past recovery: the other one probes and closes it
    probe = other.entry("r", "internal", user("u2"))
    assert isinstance(probe, Entry)
    probe.exit()
    assert here.breaker_state("r") == "closed"
    again = here.entry("r", "internal", user("u1"))
    assert isinstance(again, Entry)  # the refused call's count did not stay behind
    full = here.entry("r", "internal", user("u1"))
    assert isinstance(full, Blocked) and full.family == "hot_param"  # one in flight: the limit
    again.exit()
    later = here.entry("r", "internal", user("u1"))
    assert isinstance(later, Entry)
    later.exit()


# -- call by call, as the per-process paths ---------------------------------------------------

CASES = {
    "flow": ("flow: {qps: 60}", "lean_path"),
    "flow+isolation": ("flow: {qps: 30}\n    concurrency: {max: 3}", "lean_path"),
    "flow+breaker+hot": (
        "flow: {qps: 30}\n    hot_param: {from: arg, name: uid, qps: 3, burst: 1}\n"
        "    circuit_breaker: {strategy: error_ratio, threshold: 0.5, min_requests: 5, "
        "window: 2s, recovery: 300ms}", "hot_path"),
    "flow+breaker+hot concurrency": (
        "flow: {qps: 30}\n    hot_param: {from: arg, name: uid, concurrency: 1}\n"
        "    circuit_breaker: {strategy: error_ratio, threshold: 0.5, min_requests: 5, "
        "window: 2s, recovery: 300ms}", "hot_path"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_shared_paths_decide_as_the_per_process_ones(shm: Path, case: str) -> None:
    """Same rules, same calls (values, holds, failures), same clock: the same decisions."""
    body, path = CASES[case]
    rules = f"rules:\n  - resource: r\n    {body}\n"
    now = [10**12]
    engines = [local_engine(rules, lambda: now[0]), instance_engine(rules, shm, lambda: now[0])]
    assert path_of(engines[1], "r") == path
    rnd = random.Random(case)
    held: list[list[Any]] = []
    outcomes: Counter[str] = Counter()
    for i in range(4000):
        now[0] += int(rnd.expovariate(1 / 8_000_000))
        if rnd.random() < 0.002:
            now[0] += BUCKET_NS  # a quiet spell
        value = user(f"u{rnd.randint(1, 20)}")
        pair = [eng.entry("r", "internal", value) for eng in engines]
        seen = [p.family if isinstance(p, Blocked) else "passed" for p in pair]
        assert seen[0] == seen[1], (i, seen)
        outcomes[seen[0]] += 1
        if isinstance(pair[0], Entry):
            held.append(pair)
        while held and rnd.random() < 0.6:
            failed = rnd.random() < 0.3
            now[0] += rnd.randint(0, 3) * 1_000_000
            for e in held.pop(rnd.randrange(len(held))):
                e.exit(failed)
        if "breaker" in case:
            assert engines[0].breaker_state("r") == engines[1].breaker_state("r"), i
    print(case, dict(outcomes))
    assert outcomes["passed"] and outcomes["flow"]  # the window filled, and emptied

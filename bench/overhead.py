"""Governance overhead per call, side by side with the peers, in one interleaved run.

Every candidate calls the same function. Numbers are ns per call; `over base` is what each
adds to a bare call. Run: `python bench/overhead.py`.

The `shared` rows run the same engine API over the counters a pre-fork server's workers share
(stat/shared.py: a shared-memory segment and a process-shared lock), printed side by side with
the per-process rows at the end (target: at most +300 ns per call), then once more as paired
differences: each shared row timed back to back with its per-process twin, round after round.
Far from their limits (as here) flow's calls mostly use a worker's lease and skip the lock; the
`no lease` pair shows flow as it runs near its limit, where every call takes the lock, and the
`flow + isolation` pair a resource whose calls always take it.

Two kinds of instpy rows: `engine API` calls `Engine.entry`/`Entry.exit` directly (what a
framework hook does per request), and `compiled` rows call a function our build rewrote
(`instpy.build.inject.inject`) with the method hooks, the way a governed artifact runs: an
idle target is switched off and costs the trampoline's one flag check.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import limits
import pybreaker
import wrapt
from timing import best_ns_per_call, print_table

from instpy.build.inject import inject
from instpy.build.plan import PlannedTarget
from instpy.runtime import injected
from instpy.runtime.config.document import parse_config
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked
from instpy.runtime.hotspot.check import Lookup
from instpy.runtime.resource import Resource
from instpy.runtime.shared import path as shared_path
from instpy.runtime.shared.segment import segment_for, shared_dir
from instpy.runtime.stat.shared import SharedStore

BIG = 1_000_000_000  # thresholds never reached: we time the pass path
CONFIG = f"""
metrics: {{all_resources: true}}
rules:
  - resource: flow
    flow: {{qps: {BIG}}}
  - resource: flow_isolation
    flow: {{qps: {BIG}}}
    concurrency: {{max: 1000000}}
  - resource: full
    flow: {{qps: {BIG}}}
    circuit_breaker: {{strategy: error_ratio, threshold: 0.5, min_requests: 10, window: 10s}}
  - resource: full_hot
    flow: {{qps: {BIG}}}
    circuit_breaker: {{strategy: error_ratio, threshold: 0.5, min_requests: 10, window: 10s}}
    hot_param: {{from: arg, name: uid, qps: {BIG}}}
  - resource: "benchgov:flow"
    flow: {{qps: {BIG}}}
  - resource: "benchgov:full"
    flow: {{qps: {BIG}}}
    circuit_breaker: {{strategy: error_ratio, threshold: 0.5, min_requests: 10, window: 10s}}
  - resource: "benchgov:full_hot"
    flow: {{qps: {BIG}}}
    circuit_breaker: {{strategy: error_ratio, threshold: 0.5, min_requests: 10, window: 10s}}
    hot_param: {{from: arg, name: uid, qps: {BIG}}}
"""
# The same function under four names; the method hooks govern each by its fingerprint.
COMPILED = "".join(f"def {name}(uid):\n    return 1\n\n\n"
                   for name in ("idle", "stats", "flow", "full", "full_hot"))
HOOK = "instpy.runtime.hooks.method"


def compiled() -> types.ModuleType:
    """`COMPILED` rewritten by our injector with the method hooks, then imported."""
    targets = [PlannedTarget(fingerprint=f"benchgov:{name}", file="benchgov.py",
                             line=1 + 4 * i, index=i, kind="sync", rules=("bench",),
                             on_enter=(f"{HOOK}:on_enter",), on_exit=(f"{HOOK}:on_exit",),
                             params=("uid",), keys=("uid",))
               for i, name in enumerate(("idle", "stats", "flow", "full", "full_hot"))]
    source = inject(COMPILED.encode(), targets, "benchgov.py")
    module = types.ModuleType("benchgov")
    exec(compile(source, "benchgov.py", "exec"), module.__dict__)
    exec(compile("def plain(uid):\n    return 1\n", "benchgov.py", "exec"), module.__dict__)
    return module


def work() -> int:
    return 1


def paired_cases(lookup: Lookup) -> list[tuple[str, str, Lookup | None]]:
    """(case, resource, hot-param lookup) of the paired per process / shared rows."""
    return [("statistics only", "stats", None), ("flow", "flow", None),
            ("flow + breaker", "full", None), ("flow + breaker + hot param", "full_hot", lookup),
            ("flow + isolation (the lock on every call)", "flow_isolation", None)]


def paired_differences(pairs: list[tuple[str, Callable[[], object], Callable[[], object]]],
                       *, calls: int, rounds: int) -> dict[str, list[float]]:
    """Per round and pair: ns per call of the second minus the first, timed back to back."""
    out: dict[str, list[float]] = {name: [] for name, _, _ in pairs}

    def per_call(fn: Callable[[], object]) -> float:
        loop = range(calls)
        start = time.perf_counter_ns()
        for _ in loop:
            fn()
        return (time.perf_counter_ns() - start) / calls

    for r in range(rounds):
        for name, first, second in pairs:
            if r % 2:
                b = per_call(second)
                a = per_call(first)
            else:
                a = per_call(first)
                b = per_call(second)
            out[name].append(b - a)
    return out


def _clock_token(lookup: Lookup | None) -> object:
    return time.monotonic_ns()


def _clock_exit(token: object, error: object) -> None:
    time.monotonic_ns()


class _Floor:
    """The least any per-call governance can do on this interpreter: the handle's shape (a
    flag, an enter and an exit call) and a clock read in each (a start time and an RT),
    counting nothing. Printed so the engine rows read as floor + our counting and checks."""

    __slots__ = ("active", "enter", "exit")

    def __init__(self) -> None:
        self.active = True
        self.enter: Callable[[Lookup | None], object] = _clock_token
        self.exit: Callable[[object, object], None] = _clock_exit


def main() -> None:
    idle_engine = Engine()
    eng = Engine(parse_config(CONFIG, "bench.yaml"))
    # Where the runtime keeps segments (memory, /dev/shm): a file on disk would add the
    # kernel's write-back faults to the shared rows.
    shm = tempfile.TemporaryDirectory(dir=shared_dir())
    segment = segment_for(f"bench{os.getpid()}", shm.name)
    shared = Engine(parse_config(CONFIG, "bench.yaml"), store=SharedStore(segment))
    # The same again with flow's leases off, as every call near a limit runs: the lock each time.
    spread, shared_path.LEASE_SPREAD = shared_path.LEASE_SPREAD, 1 << 62
    no_lease = Engine(parse_config(CONFIG, "bench.yaml"), store=SharedStore(segment))
    shared_path.LEASE_SPREAD = spread
    # The method hooks use the process's engine, which reads INSTPY_GOVERNANCE.
    folder = tempfile.TemporaryDirectory()
    rules = Path(folder.name) / "governance.yaml"
    rules.write_text(CONFIG)
    os.environ["INSTPY_GOVERNANCE"] = str(rules)
    mod = compiled()
    plain = mod.plain
    from instpy.runtime.hooks import method  # noqa: F401  (subscribes the target switch)
    for name in ("stats", "flow", "full", "full_hot"):
        getattr(mod, name)("user-1")  # resolves the hooks once
    # With `metrics.all_resources` every target is wanted; an idle target is one the hook
    # switched off (no rule names it and statistics are not asked for): its flag is False.
    for target in injected.targets("benchgov:idle"):
        target.active = False

    def governed(engine: Engine | None, resource: str,
                 lookup: Lookup | None = None) -> Callable[[], object]:
        # One function per candidate, like the peers' rows: what a hook does around the call,
        # with the resource handle it fetched once (governance.py, Contract B).
        res: Resource | _Floor = (engine.resource(resource, "internal") if engine is not None
                                  else floor)

        def call() -> object:
            if not res.active:
                return work()
            token = res.enter(lookup)
            if token.__class__ is Blocked:
                return None
            try:
                value = work()
            except BaseException as exc:
                res.exit(token, exc)
                raise
            res.exit(token, None)
            return value
        return call

    def lookup(source: str, name: str) -> object:
        return "user-1"

    floor = _Floor()

    wrapped = wrapt.FunctionWrapper(work, lambda wrapped, instance, args, kw: wrapped(*args, **kw))
    storage = limits.storage.MemoryStorage()
    fixed = limits.strategies.FixedWindowRateLimiter(storage)
    moving = limits.strategies.MovingWindowRateLimiter(storage)
    item = limits.parse(f"{BIG}/second")
    breaker = pybreaker.CircuitBreaker(fail_max=10, reset_timeout=5)

    def with_fixed() -> object:
        return work() if fixed.hit(item, "bench") else None

    def with_moving() -> object:
        return work() if moving.hit(item, "bench") else None

    def with_limits_and_breaker() -> object:
        return breaker.call(work) if fixed.hit(item, "bench") else None

    candidates: list[tuple[str, Callable[[], object]]] = [
        ("bare call", work),
        ("bare call, compiled rows' shape", lambda: plain("user-1")),
        ("floor: handle shape + 2 clock reads, no counting", governed(None, "floor")),
        ("instpy engine API: no rule (idle)", governed(idle_engine, "none")),
        ("instpy engine API: statistics only", governed(eng, "stats")),
        ("instpy engine API: flow", governed(eng, "flow")),
        ("instpy engine API: flow + breaker", governed(eng, "full")),
        ("instpy engine API: flow + breaker + hot param", governed(eng, "full_hot", lookup)),
        ("instpy shared engine API: statistics only", governed(shared, "stats")),
        ("instpy shared engine API: flow", governed(shared, "flow")),
        ("instpy shared engine API: flow + breaker", governed(shared, "full")),
        ("instpy shared engine API: flow + breaker + hot param",
         governed(shared, "full_hot", lookup)),
        ("instpy compiled: idle target", lambda: mod.idle("user-1")),
        ("instpy compiled: statistics only", lambda: mod.stats("user-1")),
        ("instpy compiled: flow", lambda: mod.flow("user-1")),
        ("instpy compiled: flow + breaker", lambda: mod.full("user-1")),
        ("instpy compiled: flow + breaker + hot param", lambda: mod.full_hot("user-1")),
        ("wrapt no-op wrapper", wrapped),
        ("limits FixedWindow hit", with_fixed),
        ("limits MovingWindow hit", with_moving),
        ("pybreaker call", lambda: breaker.call(work)),
        ("limits Fixed + pybreaker", with_limits_and_breaker),
    ]
    best = best_ns_per_call(candidates, calls=10_000, rounds=15)
    print(f"Python {sys.version.split()[0]}; best of 15 interleaved rounds x 10,000 calls")
    print_table(best, "bare call")
    peer = best["limits Fixed + pybreaker"] - best["bare call"]
    ours = best["instpy engine API: flow + breaker"] - best["bare call"]
    print(f"\nlimits FixedWindow + pybreaker overhead / instpy flow + breaker overhead: "
          f"{peer / ours:.1f}x (engine API)")
    # The compiled rows call a one-argument function through a lambda: compare them with the
    # same shape without a trampoline.
    shape = best["bare call, compiled rows' shape"]
    print("compiled (ns over the same function without a trampoline): "
          + ", ".join(f"{name.split(': ')[1]} {best[name] - shape:.0f}"
                      for name in best if name.startswith("instpy compiled")))
    over_floor = best["floor: handle shape + 2 clock reads, no counting"]
    print("engine API over the floor (what our counting and checks cost): "
          + ", ".join(f"{name.split(': ')[1]} {best[name] - over_floor:.0f}"
                      for name in best if name.startswith("instpy engine API")
                      and "idle" not in name))
    print("\nper process vs shared by the instance's workers (engine API, ns over bare call):")
    for case in ("statistics only", "flow", "flow + breaker", "flow + breaker + hot param"):
        local = best[f"instpy engine API: {case}"] - best["bare call"]
        inst = best[f"instpy shared engine API: {case}"] - best["bare call"]
        print(f"  {case:<28} per process {local:7.0f}   shared {inst:7.0f}   "
              f"{inst - local:+.0f}")
    # The same pairs again, each timed back to back with its per-process twin round after
    # round (in alternating order), so that the machine's drift cancels out of every
    # difference; the spread of the differences shows how much to trust the median.
    pairs = [(case, governed(eng, resource, key), governed(shared, resource, key))
             for case, resource, key in paired_cases(lookup)]
    pairs.append(("flow, no lease (as near its limit)",
                  governed(eng, "flow"), governed(no_lease, "flow")))
    rounds = 41
    diffs = paired_differences(pairs, calls=10_000, rounds=rounds)
    print(f"\nshared minus per process, paired rounds ({rounds} x 10,000 calls, ns per call):")
    print(f"  {'case':<46} {'median':>7} {'25%':>7} {'75%':>7}")
    for case, d in diffs.items():
        d.sort()
        print(f"  {case:<46} {d[len(d) // 2]:+7.0f} {d[len(d) // 4]:+7.0f} "
              f"{d[3 * len(d) // 4]:+7.0f}")
    from instpy.runtime.governance import engine
    engine().close()
    segment.leave()
    shm.cleanup()
    folder.cleanup()


if __name__ == "__main__":
    main()

"""Governance overhead per call, side by side with the peers, in one interleaved run.

Every candidate calls the same function. Numbers are ns per call; `over base` is what each
adds to a bare call. Run: `python bench/overhead.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import limits
import pybreaker
import wrapt
from timing import best_ns_per_call, print_table

from instpy.runtime.config.document import parse_config
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Entry

BIG = 1_000_000_000  # thresholds never reached: we time the pass path
CONFIG = f"""
metrics: {{all_resources: true}}
rules:
  - resource: flow
    flow: {{qps: {BIG}}}
  - resource: full
    flow: {{qps: {BIG}}}
    circuit_breaker: {{strategy: error_ratio, threshold: 0.5, min_requests: 10, window: 10s}}
  - resource: full_hot
    flow: {{qps: {BIG}}}
    circuit_breaker: {{strategy: error_ratio, threshold: 0.5, min_requests: 10, window: 10s}}
    hot_param: {{from: arg, name: uid, qps: {BIG}}}
"""


def work() -> int:
    return 1


def main() -> None:
    idle_engine = Engine()
    eng = Engine(parse_config(CONFIG, "bench.yaml"))

    def governed(engine: Engine, resource: str,
                 lookup: object = None) -> Callable[[], object]:
        # One function per candidate, like the peers' rows: what a hook does around the call.
        entry = engine.entry

        def call() -> object:
            res = entry(resource, "internal", lookup)  # type: ignore[arg-type]
            if isinstance(res, Entry):
                try:
                    return work()
                finally:
                    res.exit()
            return None
        return call

    def lookup(source: str, name: str) -> object:
        return "user-1"

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
        ("instpy: no rule (idle)", governed(idle_engine, "none")),
        ("instpy: statistics only", governed(eng, "stats")),
        ("instpy: flow", governed(eng, "flow")),
        ("instpy: flow + breaker", governed(eng, "full")),
        ("instpy: flow + breaker + hot param", governed(eng, "full_hot", lookup)),
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
    ours = best["instpy: flow + breaker"] - best["bare call"]
    print(f"\nlimits FixedWindow + pybreaker overhead / instpy flow + breaker overhead: "
          f"{peer / ours:.1f}x")


if __name__ == "__main__":
    main()

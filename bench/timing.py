"""Side-by-side timing shared by the benchmarks.

This machine is shared and noisy: absolute times drift between runs, so every benchmark measures
its candidates interleaved, round after round, in one process, keeps each candidate's best round,
and prints ratios against a baseline measured the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def best_ns_per_call(
    candidates: Sequence[tuple[str, Callable[[], object]]],
    *,
    calls: int = 20_000,
    rounds: int = 15,
) -> dict[str, float]:
    """Return each candidate's best nanoseconds per call over `rounds` interleaved rounds."""
    best = {name: float("inf") for name, _ in candidates}
    for _ in range(rounds):
        for name, fn in candidates:
            loop = range(calls)
            start = time.perf_counter_ns()
            for _ in loop:
                fn()
            elapsed = (time.perf_counter_ns() - start) / calls
            best[name] = min(best[name], elapsed)
    return best


def print_table(best: dict[str, float], baseline: str) -> None:
    """Print ns per call, the excess over `baseline`, and the ratio to it."""
    base = best[baseline]
    width = max(len(name) for name in best)
    print(f"{'candidate':<{width}}  {'ns/call':>9}  {'over base':>9}  {'ratio':>6}")
    for name, ns in best.items():
        print(f"{name:<{width}}  {ns:9.1f}  {ns - base:9.1f}  {ns / base:6.2f}")

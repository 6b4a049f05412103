"""Circuit breaker rule: stop calling a resource that is failing or slow, then probe it."""

from __future__ import annotations

from dataclasses import dataclass

from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node

STRATEGIES = ("slow_ratio", "error_ratio", "error_count")
KEYS = ("strategy", "threshold", "max_rt", "min_requests", "window", "recovery", "probes")


@dataclass(frozen=True)
class BreakerRule:
    """Opens when, over the last `window_ms`, with at least `min_requests` completed calls:

    * slow_ratio: the share of calls slower than `max_rt_ms` exceeds `threshold` (0-1);
    * error_ratio: the share of failed calls exceeds `threshold` (0-1);
    * error_count: failed calls reach `threshold`.

    Open, it blocks every call for `recovery_ms`, then half-opens: `probes` calls go through;
    if all succeed (and are not slow) it closes, the first bad probe re-opens it.
    """

    resource: str
    strategy: str
    threshold: float
    max_rt_ms: float = 0.0
    min_requests: int = 5
    window_ms: float = 10_000.0
    recovery_ms: float = 5_000.0
    probes: int = 1


def parse(node: Node, resource: str) -> BreakerRule:
    fields = v.mapping(node, KEYS, "circuit_breaker")
    strategy = v.choice(v.require(fields, "strategy", node, "circuit_breaker"), STRATEGIES)
    threshold_node = v.require(fields, "threshold", node, "circuit_breaker")
    if strategy == "error_count":
        threshold = float(v.integer(threshold_node, minimum=1, maximum=1_000_000_000))
    else:
        threshold = v.ratio(threshold_node)
    max_rt = 0.0
    if strategy == "slow_ratio":
        max_rt = v.duration_ms(v.require(fields, "max_rt", node, "circuit_breaker (slow_ratio)"))
    elif "max_rt" in fields:
        raise fields["max_rt"].error("`max_rt` only applies to strategy slow_ratio",
                                     "remove it or use `strategy: slow_ratio`")
    min_requests = (v.integer(fields["min_requests"], minimum=1, maximum=1_000_000_000)
                    if "min_requests" in fields else 5)
    window = (v.duration_ms(fields["window"], minimum_ms=100.0)
              if "window" in fields else 10_000.0)
    recovery = (v.duration_ms(fields["recovery"], allow_zero=False)
                if "recovery" in fields else 5_000.0)
    probes = v.integer(fields["probes"], minimum=1, maximum=1000) if "probes" in fields else 1
    return BreakerRule(resource, strategy, threshold, max_rt, min_requests, window, recovery,
                       probes)

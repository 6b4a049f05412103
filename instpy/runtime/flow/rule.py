"""Flow control rule: a QPS threshold over the resource's one-second sliding window."""

from __future__ import annotations

from dataclasses import dataclass

from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node

BEHAVIORS = ("reject", "warm_up", "throttling")
KEYS = ("qps", "behavior", "warm_up_period", "cold_factor", "max_queueing")


@dataclass(frozen=True)
class FlowRule:
    """`qps` requests per second pass; what happens to the rest depends on `behavior`.

    * reject: excess requests are blocked at once (Sentinel's Reject).
    * warm_up: the allowed rate starts at qps / cold_factor and rises to qps over
      `warm_up_period_ms` once traffic arrives (Guava/Sentinel warm-up token model).
    * throttling: requests are paced one every 1/qps seconds; a request waits its turn for
      at most `max_queueing_ms`, else it is blocked (leaky bucket).
    """

    resource: str
    qps: float
    behavior: str = "reject"
    warm_up_period_ms: float = 10_000.0
    cold_factor: float = 3.0
    max_queueing_ms: float = 500.0


def parse(node: Node, resource: str) -> FlowRule:
    fields = v.mapping(node, KEYS, "flow")
    qps = v.number(v.require(fields, "qps", node, "flow"), minimum=0.0, maximum=1e9)
    behavior = v.choice(fields["behavior"], BEHAVIORS) if "behavior" in fields else "reject"
    rule = FlowRule(resource=resource, qps=qps, behavior=behavior)
    if ("warm_up_period" in fields or "cold_factor" in fields) and behavior != "warm_up":
        key = "warm_up_period" if "warm_up_period" in fields else "cold_factor"
        raise fields[key].error(f"`{key}` only applies to behavior warm_up",
                                "add `behavior: warm_up` or remove the key")
    if "max_queueing" in fields and behavior != "throttling":
        raise fields["max_queueing"].error("`max_queueing` only applies to behavior throttling",
                                           "add `behavior: throttling` or remove the key")
    if behavior == "warm_up":
        period = (v.duration_ms(fields["warm_up_period"], allow_zero=False)
                  if "warm_up_period" in fields else rule.warm_up_period_ms)
        cold = (v.number(fields["cold_factor"], minimum=1.0, exclusive_minimum=True,
                         maximum=1000.0) if "cold_factor" in fields else rule.cold_factor)
        if qps < 1.0:
            raise node.error("warm_up needs qps of at least 1",
                             "raise qps or use behavior reject/throttling")
        rule = FlowRule(resource, qps, behavior, warm_up_period_ms=period, cold_factor=cold)
    elif behavior == "throttling":
        wait = (v.duration_ms(fields["max_queueing"]) if "max_queueing" in fields
                else rule.max_queueing_ms)
        if qps <= 0.0:
            raise node.error("throttling needs qps greater than 0",
                             "raise qps, or use `degrade:` to answer every call")
        rule = FlowRule(resource, qps, behavior, max_queueing_ms=wait)
    return rule

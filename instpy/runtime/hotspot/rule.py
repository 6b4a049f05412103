"""Hot-parameter rule: a limit per value of one request parameter (per user id, per sku...)."""

from __future__ import annotations

from dataclasses import dataclass

from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node

SOURCES = ("query", "header", "cookie", "path", "arg")
KEYS = ("from", "name", "qps", "burst", "concurrency", "items", "max_tracked")


@dataclass(frozen=True)
class HotParamRule:
    """Per distinct value of parameter `name` taken from `source`.

    Mode `qps`: a token bucket per value refilled at `threshold` tokens per second holding at
    most `threshold + burst`. Mode `concurrency`: at most `threshold` calls in flight per value.
    `items` overrides the threshold for specific values (compared as text). At most
    `max_tracked` values keep state (least recently used are forgotten first).
    """

    resource: str
    source: str
    name: str
    mode: str  # "qps" | "concurrency"
    threshold: float
    burst: int = 0
    items: tuple[tuple[str, float], ...] = ()
    max_tracked: int = 10_000


def parse(node: Node, resource: str) -> HotParamRule:
    fields = v.mapping(node, KEYS, "hot_param")
    source = v.choice(v.require(fields, "from", node, "hot_param"), SOURCES)
    name = v.string(v.require(fields, "name", node, "hot_param"))
    if ("qps" in fields) == ("concurrency" in fields):
        raise node.error("hot_param needs exactly one of `qps` or `concurrency`",
                         "write `qps: 5` (rate per value) or `concurrency: 2` "
                         "(in flight per value)")
    mode = "qps" if "qps" in fields else "concurrency"
    if mode == "qps":
        threshold = v.number(fields["qps"], minimum=0.0, maximum=1e9)
    else:
        threshold = float(v.integer(fields["concurrency"], minimum=0, maximum=1_000_000))
    burst = 0
    if "burst" in fields:
        if mode != "qps":
            raise fields["burst"].error("`burst` only applies with `qps`",
                                        "remove `burst` or limit by `qps`")
        burst = v.integer(fields["burst"], minimum=0, maximum=1_000_000_000)
    items: list[tuple[str, float]] = []
    if "items" in fields:
        item_node = fields["items"]
        if not isinstance(item_node.value, dict):
            raise item_node.error("`items` must map a parameter value to its own limit",
                                  'write it like {"vip-1": 100}')
        for key, limit_node in item_node.value.items():
            limit = (v.number(limit_node, minimum=0.0, maximum=1e9) if mode == "qps"
                     else float(v.integer(limit_node, minimum=0, maximum=1_000_000)))
            items.append((key, limit))
    max_tracked = (v.integer(fields["max_tracked"], minimum=1, maximum=10_000_000)
                   if "max_tracked" in fields else 10_000)
    return HotParamRule(resource, source, name, mode, threshold, burst, tuple(items), max_tracked)

"""Isolation rule: at most `max_concurrency` calls of the resource in flight at once."""

from __future__ import annotations

from dataclasses import dataclass

from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node

KEYS = ("max",)


@dataclass(frozen=True)
class IsolationRule:
    resource: str
    max_concurrency: int


def parse(node: Node, resource: str) -> IsolationRule:
    fields = v.mapping(node, KEYS, "concurrency")
    limit = v.integer(v.require(fields, "max", node, "concurrency"), minimum=1, maximum=1_000_000)
    return IsolationRule(resource=resource, max_concurrency=limit)

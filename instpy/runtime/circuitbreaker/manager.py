"""Builds circuit breakers for a validated batch, outside any lock; an unchanged rule keeps its
breaker, so a reload neither closes an open breaker nor forgets its window."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from instpy.runtime.circuitbreaker.check import BreakerCheck
from instpy.runtime.circuitbreaker.rule import BreakerRule


def build(rules: Iterable[BreakerRule],
          previous: Mapping[object, object]) -> dict[str, BreakerCheck]:
    out: dict[str, BreakerCheck] = {}
    for rule in rules:
        kept = previous.get(rule)
        out[rule.resource] = kept if isinstance(kept, BreakerCheck) else BreakerCheck(rule)
    return out

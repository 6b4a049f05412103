"""Builds circuit breakers for a validated batch, outside any lock; an unchanged rule keeps its
breaker, so a reload neither closes an open breaker nor forgets its window."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from instpy.runtime.circuitbreaker import shared
from instpy.runtime.circuitbreaker.check import BreakerCheck
from instpy.runtime.circuitbreaker.rule import BreakerRule
from instpy.runtime.shared.state import SharedState, StateTable


def build(rules: Iterable[BreakerRule], previous: Mapping[object, object],
          states: StateTable | None = None) -> dict[str, BreakerCheck]:
    """`states` (the store's, see StatsStore.states) gives a rule of scope `instance` one
    breaker for all the workers of a pre-fork server; without it, each process has its own."""
    out: dict[str, BreakerCheck] = {}
    for rule in rules:
        kept = previous.get(rule)
        if isinstance(kept, BreakerCheck):
            out[rule.resource] = kept
            continue
        state = None if states is None else states.state(
            "circuit_breaker", rule, rule.resource, shared.FIELDS, shared.init)
        out[rule.resource] = (shared.SharedBreakerCheck(rule, state)
                              if isinstance(state, SharedState) else BreakerCheck(rule))
    return out

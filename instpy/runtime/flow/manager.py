"""Builds flow checks for a validated rule batch, outside any lock.

The engine swaps the result in with the rest of the snapshot (one reference); a rule equal to
one already in force keeps its check, so a reload does not reset warm-up or pacing state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from instpy.runtime.flow.check import CHECK_TYPES, FlowCheck, new_check
from instpy.runtime.flow.rule import FlowRule
from instpy.runtime.shared.state import StateTable


def build(rules: Iterable[FlowRule], previous: Mapping[object, object],
          states: StateTable | None = None) -> dict[str, FlowCheck]:
    """`states` (the store's, see StatsStore.states) keeps warm-up and pacing state where a
    pre-fork server's workers share it; without it, each process keeps its own."""
    out: dict[str, FlowCheck] = {}
    for rule in rules:
        kept = previous.get(rule)
        out[rule.resource] = kept if isinstance(kept, CHECK_TYPES) else new_check(rule, states)
    return out

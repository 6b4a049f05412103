"""Builds hot-parameter checks for a validated batch, outside any lock; equal rules keep their
per-value state across a reload."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from instpy.runtime.hotspot.check import CHECK_TYPES, HotCheck, new_check
from instpy.runtime.hotspot.rule import HotParamRule
from instpy.runtime.hotspot.shared import new_shared
from instpy.runtime.shared.state import StateTable


def build(rules: Iterable[HotParamRule], previous: Mapping[object, object],
          states: StateTable | None = None) -> dict[str, HotCheck]:
    """`states` (the store's, see StatsStore.states) gives a rule of scope `instance` one
    table of values for all the workers of a pre-fork server; without it, each process keeps
    its own."""
    out: dict[str, HotCheck] = {}
    for rule in rules:
        kept = previous.get(rule)
        if isinstance(kept, CHECK_TYPES):
            out[rule.resource] = kept
        else:
            out[rule.resource] = new_check(rule) if states is None else new_shared(rule, states)
    return out

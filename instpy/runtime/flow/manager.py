"""Builds flow checks for a validated rule batch, outside any lock.

The engine swaps the result in with the rest of the snapshot (one reference); a rule equal to
one already in force keeps its check, so a reload does not reset warm-up or pacing state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from instpy.runtime.flow.check import CHECK_TYPES, FlowCheck, new_check
from instpy.runtime.flow.rule import FlowRule


def build(rules: Iterable[FlowRule], previous: Mapping[object, object]) -> dict[str, FlowCheck]:
    out: dict[str, FlowCheck] = {}
    for rule in rules:
        kept = previous.get(rule)
        out[rule.resource] = kept if isinstance(kept, CHECK_TYPES) else new_check(rule)
    return out

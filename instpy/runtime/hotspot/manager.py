"""Builds hot-parameter checks for a validated batch, outside any lock; equal rules keep their
per-value state across a reload."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from instpy.runtime.hotspot.check import CHECK_TYPES, HotCheck, new_check
from instpy.runtime.hotspot.rule import HotParamRule


def build(rules: Iterable[HotParamRule], previous: Mapping[object, object]) -> dict[str, HotCheck]:
    out: dict[str, HotCheck] = {}
    for rule in rules:
        kept = previous.get(rule)
        out[rule.resource] = kept if isinstance(kept, CHECK_TYPES) else new_check(rule)
    return out

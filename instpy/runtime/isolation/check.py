"""Isolation check: block when `max_concurrency` calls are already in flight."""

from __future__ import annotations

from instpy.runtime.entry import TrackedEntry
from instpy.runtime.isolation.rule import IsolationRule
from instpy.runtime.stat.store import ResourceStats


class IsolationCheck:
    family = "isolation"
    __slots__ = ("limit", "rule")

    def __init__(self, rule: IsolationRule) -> None:
        self.rule = rule
        self.limit = rule.max_concurrency

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        # In flight is counted on pass under the same lock, so check-then-count is atomic.
        if stats.inflight >= self.limit:
            return stats.inflight
        return None

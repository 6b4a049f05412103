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
        # In flight already counts this call (counted before any check reads it), so of two
        # racing calls the later one sees both: never more than `limit` pass.
        inflight = stats.inflight
        if inflight > self.limit:
            return inflight - 1
        return None

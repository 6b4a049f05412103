"""The storage seam for statistics.

The engine asks a `StatsStore` for the counters of a resource and only ever uses the
`ResourceStats` protocol below, so the store that keeps counters in shared memory across
pre-fork worker processes (stat/shared.py, with a process-shared lock) replaces `LocalStore`
without touching the checks. The store is chosen when the engine is built; each plan is built
over the counters it was given, so no call asks which store it has.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from instpy.runtime.stat.window import InboundStats, LocalStats

if TYPE_CHECKING:
    from instpy.runtime.config.rules_section import ResourceRules
    from instpy.runtime.shared.state import StateTable


class Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...


class ResourceStats(Protocol):
    """Counters of one resource.

    The per-call methods (`on_pass`, `admit`, `cancel`, `on_block`, `on_complete`) are called
    without `lock` on builds with a GIL and must be safe that way (see stat/window.py for how
    `LocalStats` keeps counts exact); a shared-memory store may take a process-shared lock
    inside them. `lock` serialises the checks that keep multi-field state, and every call on
    free-threaded builds.
    """

    @property
    def lock(self) -> Lock: ...

    @property
    def inflight(self) -> int: ...

    total_blocked: dict[str, int]

    def floor_ns(self) -> int: ...
    def on_pass(self, now_ns: int) -> object: ...
    def admit(self, now_ns: int, limit: float) -> object: ...
    def cancel(self, token: object, now_ns: int, family: str) -> None: ...
    def on_block(self, now_ns: int, family: str) -> None: ...
    def on_complete(self, now_ns: int, rt_ns: int, error: bool) -> None: ...
    def passed(self, now_ns: int) -> int: ...
    def totals(self) -> tuple[int, int, int, int]: ...
    def window(self, now_ns: int) -> tuple[int, int, int, int, int, int]: ...


class InboundResourceStats(ResourceStats, Protocol):
    def capacity(self, now_ns: int) -> float: ...


class StatsStore(Protocol):
    def stats(self, resource: str) -> ResourceStats: ...
    def process_stats(self, resource: str) -> ResourceStats: ...
    def inbound(self) -> InboundResourceStats: ...
    def resources(self) -> list[tuple[str, ResourceStats]]: ...
    def states(self, rules: Iterable[ResourceRules]) -> StateTable: ...


class LocalStore:
    """Counters in this process's memory; one `LocalStats` per resource, kept across reloads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, ResourceStats] = {}
        self._inbound = InboundStats()

    def stats(self, resource: str) -> ResourceStats:
        found = self._stats.get(resource)
        if found is None:
            with self._lock:
                found = self._stats.setdefault(resource, LocalStats())
        return found

    def process_stats(self, resource: str) -> ResourceStats:
        """Counters of a rule with `scope: process`: here, the same as `stats`."""
        return self.stats(resource)

    def inbound(self) -> InboundResourceStats:
        return self._inbound

    def resources(self) -> list[tuple[str, ResourceStats]]:
        with self._lock:
            return sorted(self._stats.items())

    def states(self, rules: Iterable[ResourceRules]) -> StateTable:
        """Where the checks of `rules` keep their state: here, in this process."""
        from instpy.runtime.shared.state import StateTable
        return StateTable(None)

"""The slot chain: which checks run, in which order. This is the only place that says so.

Each check returns None to let the call pass, or the value it observed to block it; the first
block wins (Sentinel's slot chain). System adaptive protection runs before these, in
`ResourcePlan.enter`, because it guards all inbound traffic rather than one resource.
"""

from __future__ import annotations

from typing import Protocol

from instpy.runtime.entry import TrackedEntry
from instpy.runtime.events import StateChange
from instpy.runtime.stat.store import ResourceStats

FAMILIES = ("system", "flow", "isolation", "hot_param", "circuit_breaker", "degrade")


class Check(Protocol):
    """One rule's check, built by its family's manager. Runs with the resource lock held."""

    @property
    def family(self) -> str: ...

    @property
    def rule(self) -> object: ...

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None: ...


class PassHook(Protocol):
    def on_pass(self, entry: TrackedEntry) -> None: ...


class ExitHook(Protocol):
    def on_exit(self, entry: TrackedEntry, now_ns: int, rt_ns: int,
                error: bool) -> StateChange | None: ...


def chain(flow: Check | None, isolation: Check | None, hot_param: Check | None,
          circuit_breaker: Check | None) -> tuple[Check, ...]:
    """The per-resource checks in order: flow -> isolation -> hot param -> circuit breaker."""
    return tuple(c for c in (flow, isolation, hot_param, circuit_breaker) if c is not None)

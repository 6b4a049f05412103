"""A resource's precomputed plan: its statistics, its chain of checks, its fallback.

Plans are rebuilt (outside any lock) on every rule swap, never per call; the hot path only
reads attributes prepared here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from instpy.runtime.chain import Check, ExitHook, PassHook
from instpy.runtime.config.rules_section import DegradeRule
from instpy.runtime.entry import Blocked, Entry, TrackedEntry
from instpy.runtime.events import EventLog, StateChange
from instpy.runtime.fallback import Fallback
from instpy.runtime.hotspot.check import HotCheck, Lookup
from instpy.runtime.stat.store import InboundResourceStats, ResourceStats
from instpy.runtime.system.check import SystemCheck

Clock = Callable[[], int]
_new = object.__new__
Sleep = Callable[[float], object]


class ResourcePlan:
    """Everything `Engine.entry` needs for one resource under one rule snapshot."""

    __slots__ = ("checks", "clock", "degrade", "events", "exit_hooks", "fallback", "hot",
                 "inbound", "pass_hooks", "resource", "stats", "system", "tracked")

    def __init__(self, resource: str, stats: ResourceStats, *, clock: Clock, events: EventLog,
                 checks: tuple[Check, ...] = (), hot: HotCheck | None = None,
                 pass_hooks: tuple[PassHook, ...] = (), exit_hooks: tuple[ExitHook, ...] = (),
                 degrade: DegradeRule | None = None, fallback: Fallback | None = None,
                 system: SystemCheck | None = None,
                 inbound: InboundResourceStats | None = None) -> None:
        self.resource = resource
        self.stats = stats
        self.clock = clock
        self.events = events
        self.checks = checks
        self.hot = hot
        self.pass_hooks = pass_hooks
        self.exit_hooks = exit_hooks
        self.degrade = degrade
        self.fallback = degrade.fallback if degrade is not None else fallback
        self.system = system
        self.inbound = inbound
        # Statistics-only resources take the lean path: a two-slot Entry, no chain.
        self.tracked = bool(checks) or system is not None

    def enter(self, lookup: Lookup | None, inbound: bool, sleep: Sleep | None) -> Entry | Blocked:
        """Run the chain; with `sleep` None a throttled entry is returned with `wait_ns` set
        for the caller to wait (asynchronously) before running the call."""
        now = self.clock()
        stats = self.stats
        if not self.tracked:
            if self.degrade is not None:
                return self._blocked(now, "degrade", self.degrade, None)
            lean = _new(Entry)
            lean._plan = self
            lean.start_ns = now
            lock = stats.lock
            lock.acquire()
            try:
                stats.on_pass(now)
            finally:
                lock.release()
            return lean
        if self.degrade is not None:
            return self._blocked(now, "degrade", self.degrade, None)
        entry = TrackedEntry(self, now)
        if inbound and self.system is not None:
            seen = self.system.check(now)
            if seen is not None:
                return self._blocked(now, "system", self.system.rule, seen)
            entry.inbound = True
        if self.hot is not None:
            entry.hot_key = self._hot_key(lookup)
        lock = stats.lock
        fired: Check | None = None
        seen = None
        lock.acquire()
        try:
            for check in self.checks:
                seen = check.check(stats, now, entry)
                if seen is not None:
                    fired = check
                    stats.on_block(now, check.family)
                    break
            else:
                stats.on_pass(now)
                for hook in self.pass_hooks:
                    hook.on_pass(entry)
        finally:
            lock.release()
        if entry.events is not None:
            self._emit(now, entry.events)
            entry.events = None
        if fired is not None:
            self.events.blocked(now, self.resource, fired.family, fired.rule, seen)
            return Blocked(self.resource, fired.family, fired.rule, seen, self.fallback)
        if entry.inbound:
            self._inbound_pass(now)
        if entry.wait_ns and sleep is not None:
            sleep(entry.wait_ns / 1e9)
            entry.start_ns = self.clock()
        return entry

    def complete(self, entry: Entry, error: object) -> None:
        now = self.clock()
        rt = now - entry.start_ns
        bad = error is not None and error is not False
        stats = self.stats
        lock = stats.lock
        if not self.tracked:
            lock.acquire()
            try:
                stats.on_complete(now, rt, bad)
            finally:
                lock.release()
            return
        entry = cast(TrackedEntry, entry)
        lock.acquire()
        try:
            stats.on_complete(now, rt, bad)
            for hook in self.exit_hooks:
                change = hook.on_exit(entry, now, rt, bad)
                if change is not None:
                    entry.events = [change]
        finally:
            lock.release()
        if entry.inbound and self.inbound is not None:
            inbound = self.inbound
            inbound.lock.acquire()
            try:
                inbound.on_complete(now, rt, bad)
            finally:
                inbound.lock.release()
        if entry.events is not None:
            self._emit(now, entry.events)

    def _inbound_pass(self, now: int) -> None:
        inbound = self.inbound
        if inbound is None:
            return
        inbound.lock.acquire()
        try:
            inbound.on_pass(now)
        finally:
            inbound.lock.release()

    def _blocked(self, now: int, family: str, rule: object, seen: object) -> Blocked:
        stats = self.stats
        stats.lock.acquire()
        try:
            stats.on_block(now, family)
        finally:
            stats.lock.release()
        self.events.blocked(now, self.resource, family, rule, seen)
        return Blocked(self.resource, family, rule, seen, self.fallback)

    def _hot_key(self, lookup: Lookup | None) -> str | None:
        hot = self.hot
        if hot is None:
            return None
        try:
            return hot.key(lookup)
        except Exception as exc:  # the hook's lookup failed: no value, no per-value limit
            self.events.failure(self.clock(), self.resource, "hot_param_lookup", exc)
            return None

    def _emit(self, now: int, changes: list[StateChange]) -> None:
        for change in changes:
            self.events.state_changed(now, change)

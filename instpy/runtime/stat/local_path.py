"""The per-call path of plans whose counters are `LocalStats`, on builds with a GIL.

`ResourcePlan` picks this path once, when it is built, for statistics-only resources and for
reject flow, isolation and a closed breaker; any other store (shared memory across pre-fork
workers, say) keeps the generic path that goes through the `ResourceStats` protocol.

What it saves per call, against the generic path: `enter` is one closure that counts straight
into the current bucket (no `on_pass`/`admit` call), and the entry's class records the
completion in its own `exit` (no `plan.complete` and `on_complete` calls). The counting and
its exactness are LocalStats' own (stat/window.py): passes and in-flight calls are items
appended before the window is read, completions and errors `itertools.count` steps.
A blocked call, a thread that stalled past its bucket and a breaker that is not closed take
the plan's generic methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from instpy.runtime.circuitbreaker.check import CLOSED
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.hotspot.check import Lookup
from instpy.runtime.stat.window import GONE_PASSES, LocalStats

if TYPE_CHECKING:
    from instpy.runtime.plan import ResourcePlan, Sleep

Enter = Callable[["Lookup | None", bool, "Sleep | None"], "Entry | Blocked"]


class StatsEntry(Entry):
    """An entry of a LocalStats plan without a breaker: `exit` counts the completion."""

    __slots__ = ()
    _plan: ResourcePlan | None

    def exit(self, error: object = None) -> None:
        plan = self._plan
        if plan is None:
            return
        self._plan = None
        now = plan.clock()
        stats = plan.local_stats
        cur = stats.cur
        if now >= cur.end_ns:
            cur = stats.roll(now)
        next(cur.completed)
        rt = now - self.start_ns
        cur.rt_sum += rt  # reporting only (see stat/window.py)
        if rt < cur.rt_min:
            cur.rt_min = rt
        if error is not None and error is not False:
            next(cur.errors)
        stats._inflight.pop()


class BreakerEntry(Entry):
    """`StatsEntry` of a plan with a breaker: the completion also lands in the breaker's
    window, lock-free while it is closed (see circuitbreaker/check.py)."""

    __slots__ = ()
    _plan: ResourcePlan | None

    def exit(self, error: object = None) -> None:
        plan = self._plan
        if plan is None:
            return
        self._plan = None
        now = plan.clock()
        stats = plan.local_stats
        cur = stats.cur
        if now >= cur.end_ns:
            cur = stats.roll(now)
        next(cur.completed)
        rt = now - self.start_ns
        cur.rt_sum += rt
        if rt < cur.rt_min:
            cur.rt_min = rt
        bad = error is not None and error is not False
        if bad:
            next(cur.errors)
        stats._inflight.pop()
        breaker = plan.local_breaker
        # Entered closed: while not closed its completion is ignored (not a probe).
        if breaker.state is CLOSED:
            seen = breaker.count(now, rt, bad)
            if seen is not None:
                change = breaker.open_if_closed(now, seen, stats.lock)
                if change is not None:
                    plan._emit(now, [change])


def stats_enter(plan: ResourcePlan, stats: LocalStats) -> Enter:
    """`enter` of a statistics-only resource: count the pass, hand out a `StatsEntry`."""
    clock = plan.clock
    roll = stats.roll
    inflight = stats._inflight
    new = StatsEntry

    def enter(lookup: Lookup | None, inbound: bool, sleep: Sleep | None) -> Entry | Blocked:
        now = clock()
        cur = stats.cur
        if now >= cur.end_ns:
            cur = roll(now)
        cur.passed.append(None)
        inflight.append(None)
        entry = new()
        entry._plan = plan
        entry.start_ns = now
        return entry

    return enter


def lean_enter(plan: ResourcePlan, stats: LocalStats, generic: Enter) -> Enter:
    """`enter` of reject flow, isolation and a breaker: `LocalStats.admit` inlined.

    `generic` (the plan's own lean method) takes every case off the common path: a breaker
    that is not closed, a thread that stalled past its bucket, a block."""
    clock = plan.clock
    roll = stats.roll
    inflight = stats._inflight
    limit = plan.flow_limit
    flow = limit != float("inf")
    isolation = plan.isolation
    max_inflight = isolation.limit if isolation is not None else -1
    isolation_rule = isolation.rule if isolation is not None else None
    breaker = plan.breaker
    new = BreakerEntry if breaker is not None else StatsEntry

    def enter(lookup: Lookup | None, inbound: bool, sleep: Sleep | None) -> Entry | Blocked:
        if breaker is not None and breaker.state is not CLOSED:
            return generic(lookup, inbound, sleep)
        now = clock()
        cur = stats.cur
        if now >= cur.end_ns:
            cur = roll(now)
        elif now < cur.start_ns:
            return generic(lookup, inbound, sleep)  # re-timed there
        if flow:
            passed = cur.passed
            passed.append(None)  # counted before the window is read: see LocalStats.admit
            n = len(passed)
            seen = n + len(cur.prev.passed)
            nxt = cur.next
            if nxt is not None:
                later = n + len(nxt.passed)
                if later > seen:
                    seen = later
            if seen > limit:
                passed.pop()
                if seen >= GONE_PASSES:
                    return generic(lookup, inbound, sleep)  # re-timed there
                return plan._blocked(now, "flow", plan.checks[0].rule, seen - 1)
        else:
            cur.passed.append(None)
        inflight.append(None)
        if max_inflight >= 0 and len(inflight) > max_inflight:
            seen = len(inflight) - 1
            stats.cancel(cur, now, "isolation")
            return plan._refused(now, "isolation", isolation_rule, seen)
        entry = new()
        entry._plan = plan
        entry.start_ns = now
        return entry

    return enter

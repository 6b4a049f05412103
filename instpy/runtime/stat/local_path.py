"""The per-call path of plans whose counters are `LocalStats`, on builds with a GIL.

`ResourcePlan` picks this path once, when it is built, for statistics-only resources and for
reject flow, isolation and a closed breaker; any other store (shared memory across pre-fork
workers, say) keeps the generic path that goes through the `ResourceStats` protocol.

A passed call's token is its start time (an int, which the clock read allocated anyway): `enter`
counts straight into the current bucket and returns it, `exit` takes it back and records the
completion, so nothing is allocated and no method is looked up per call. Any other token (a
`TrackedEntry` of the plan's generic path, the idle token) is handed to `other`. The counting
and its exactness are LocalStats' own (stat/window.py): passes and in-flight calls are items
appended before the window is read, completions and errors `itertools.count` steps.
A blocked call, a thread that stalled past its bucket and a breaker that is not closed take
the plan's generic methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from instpy.runtime.circuitbreaker.check import CLOSED
from instpy.runtime.entry import Blocked, Exit
from instpy.runtime.hotspot.check import Lookup
from instpy.runtime.stat.window import GONE_PASSES, LocalStats, window_admit

if TYPE_CHECKING:
    from instpy.runtime.plan import ResourcePlan, Sleep

Enter = Callable[["Lookup | None", bool, "Sleep | None"], "object | Blocked"]


def stats_path(plan: ResourcePlan, stats: LocalStats, other: Exit) -> tuple[Enter, Exit]:
    """`enter`/`exit` of a statistics-only resource."""
    clock = plan.clock
    roll = stats.roll
    inflight = stats._inflight

    def enter(lookup: Lookup | None = None, inbound: bool = False,
              sleep: Sleep | None = None) -> object:
        now = clock()
        cur = stats.cur
        if now >= cur.end_ns:
            cur = roll(now)
        cur.passed.append(None)
        inflight.append(None)
        return now

    return enter, _completer(plan, stats, other)


def _completer(plan: ResourcePlan, stats: LocalStats, other: Exit) -> Exit:
    """`exit` of an int token: count the completion (and feed a closed breaker)."""
    clock = plan.clock
    roll = stats.roll
    inflight = stats._inflight
    breaker = plan.breaker

    def exit_(token: object, error: object = None) -> None:
        if token.__class__ is not int:
            return other(token, error)
        now = clock()
        cur = stats.cur
        if now >= cur.end_ns:
            cur = roll(now)
        next(cur.completed)
        rt = now - token
        cur.rt_sum += rt  # reporting only (see stat/window.py)
        if rt < cur.rt_min:
            cur.rt_min = rt
        bad = error is not None and error is not False
        if bad:
            next(cur.errors)
        inflight.pop()
        if breaker is not None:
            plan.breaker_done(breaker, now, rt, bad)
        return None

    return exit_


def lean_path(plan: ResourcePlan, stats: LocalStats, generic: Enter,
              other: Exit) -> tuple[Enter, Exit]:
    """`enter`/`exit` of reject flow, isolation and a breaker: `LocalStats.admit` without
    its method calls.

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

    def enter(lookup: Lookup | None = None, inbound: bool = False,
              sleep: Sleep | None = None) -> object:
        if breaker is not None and breaker.state is not CLOSED:
            return generic(lookup, inbound, sleep)
        now = clock()
        cur = stats.cur
        if now >= cur.end_ns:
            cur = roll(now)
        elif now < cur.start_ns:
            return generic(lookup, inbound, sleep)  # re-timed there
        if flow:
            seen = window_admit(cur, limit)
            if seen:
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
        return now

    return enter, _completer(plan, stats, other)

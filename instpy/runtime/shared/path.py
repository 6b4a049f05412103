"""The per-call path of plans whose counters are `SharedStats` (stat/shared.py), on builds with
a GIL: the shared store's counterpart of stat/local_path.py, with the same two builders.

A passed call's token is its start time (an int): `enter` counts the pass in this worker's
stripe (or through `SharedStats.admit` where a flow limit or isolation needs the instance-wide
decision) and returns it; `exit` counts the completion in the stripe. Stripe offsets are read
from the stats object per call, not captured: a fork moves a worker to another stripe. Any other
token (a `TrackedEntry` of the plan's generic path, the idle token) is handed to `other`; a
breaker that is not closed takes the plan's generic method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from instpy.runtime.circuitbreaker.check import CLOSED
from instpy.runtime.entry import Exit
from instpy.runtime.hotspot.check import Lookup
from instpy.runtime.stat.local_path import Enter
from instpy.runtime.stat.shared import SharedStats

if TYPE_CHECKING:
    from instpy.runtime.plan import ResourcePlan, Sleep

def stats_path(plan: ResourcePlan, stats: SharedStats, other: Exit) -> tuple[Enter, Exit]:
    """`enter`/`exit` of a statistics-only resource: one word each way, no lock."""
    clock = plan.clock
    roll = stats._roll
    w = stats._w

    def enter(lookup: Lookup | None = None, inbound: bool = False,
              sleep: Sleep | None = None) -> object:
        now = clock()
        if now >= stats._end:
            roll(now)
        w[stats._passed] += 1
        return now

    return enter, _completer(plan, stats, other)


def _completer(plan: ResourcePlan, stats: SharedStats, other: Exit) -> Exit:
    """`exit` of an int token: count the completion (and feed a closed breaker)."""
    clock = plan.clock
    w = stats._w
    breaker = plan.breaker

    def exit_(token: object, error: object = None) -> None:
        if token.__class__ is not int:
            return other(token, error)
        now = clock()
        rt = now - token
        w[stats._completed] += 1
        w[stats._rt_sum] += rt  # reporting only, like LocalStats' rt_sum
        rt_min = stats._rt_min
        if rt < w[rt_min]:
            w[rt_min] = rt
        bad = error is not None and error is not False
        if bad:
            w[stats._errors] += 1
        if breaker is not None:
            plan.breaker_done(now, rt, bad)
        return None

    return exit_


def lean_path(plan: ResourcePlan, stats: SharedStats, generic: Enter,
              other: Exit) -> tuple[Enter, Exit]:
    """`enter`/`exit` of reject flow, isolation and a breaker: `SharedStats.admit` (the one
    place that takes the segment lock), then isolation's read, without the plan's layers."""
    clock = plan.clock
    admit = stats.admit
    limit = plan.flow_limit
    flow_rule = plan.checks[0].rule if plan.checks else None
    isolation = plan.isolation
    max_inflight = isolation.limit if isolation is not None else -1
    isolation_rule = isolation.rule if isolation is not None else None
    breaker = plan.breaker

    def enter(lookup: Lookup | None = None, inbound: bool = False,
              sleep: Sleep | None = None) -> object:
        if breaker is not None and breaker.state is not CLOSED:
            return generic(lookup, inbound, sleep)
        now = clock()
        token = admit(now, limit)
        if token.__class__ is int:  # the instance's window is full (never -1 here)
            return plan._blocked(now, "flow", flow_rule, token)
        if max_inflight >= 0:
            inflight = stats.inflight
            if inflight > max_inflight and stats.recount(now) > max_inflight:
                inflight = stats.inflight
                stats.cancel(token, now, "isolation")
                return plan._refused(now, "isolation", isolation_rule, inflight - 1)
        return now

    return enter, _completer(plan, stats, other)

"""The per-call path of plans whose counters are `SharedStats` (stat/shared.py), on builds with
a GIL: the shared store's counterpart of stat/local_path.py, with its two builders and a third
for a hot-parameter rule (`hot_path`).

A passed call's token is its start time (an int): `enter` counts the pass in this worker's
stripe and returns it; `exit` counts the completion in the stripe. Any other token (a
`TrackedEntry` of the plan's generic path, the idle token) is handed to `other`; a breaker that
is not closed takes the plan's generic method.

What a call costs is the segment lock and the words it reads and writes, so:

* per-process values (the lock's handle, the owner number, the stripe's offsets) are read from
  the stats object per call, not captured: a fork moves a worker to another stripe and handle;
* flow admission takes the lock once and, in the common case, reads and writes one word: the
  newest admission bucket (`k << 32 | passes`). Each closure keeps, per bucket, what the other
  words said (the passes of the bucket before, which only passes given back lower) as the
  range the newest word may be in for a call to pass (`base <= word < top`), valid until the
  bucket's `end`; anything else (a new bucket, another worker ahead, a full window, a count
  kept too high) goes through `SharedStats.admission` with the lock still held;
* where the window has room for many more calls (far from the limit), the locked section
  also counts a lease of passes for this process (at most 1/LEASE_SPREAD of the room per
  worker slot in use, at most LEASE_MAX), which its next calls of that bucket take without
  the lock; what is left when the bucket ends is given back at this process's next call
  (`SharedStats.give_back_lease`). No call passes that the window did not count, and near
  the limit the lease is empty: every call takes the lock, as isolation's always do;
* a window found full answers every later call of that bucket in this closure without the
  lock (`full_end`): within a bucket the instance's passes only grow, unless some are given
  back, which `ADM_GIVEN` counts and the refusal checks;
* a closed shared breaker counts a good completion in this worker's row without the lock
  (`SharedBreakerCheck.count_good`, inlined); bad ones, and the first of each slot, take it;
* a hot value's token bucket, or its count in flight, is read and written in the same lock
  section as flow's admission, its table entry found from a per-closure cache of value ->
  entry, checked by one read of the entry's digest; a value's count in flight is given back
  in one lock section when its call ends.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import length_hint
from typing import TYPE_CHECKING

from instpy.runtime.circuitbreaker.check import CLOSED, BreakerCheck
from instpy.runtime.circuitbreaker.shared import STATE, SharedBreakerCheck
from instpy.runtime.entry import Exit, TrackedEntry
from instpy.runtime.hotspot.check import Lookup, key_of
from instpy.runtime.hotspot.shared import (
    DIGEST,
    ENTRY,
    INFLIGHT,
    LAST_NS,
    TOKENS,
    SharedHotConcurrencyCheck,
    SharedHotQpsCheck,
)
from instpy.runtime.hotspot.shared import digest as value_digest
from instpy.runtime.shared.segment import H_HIGH, H_OWNER, H_SWEEP
from instpy.runtime.stat.local_path import Enter
from instpy.runtime.stat.shared import ADM, ADM_GIVEN, MAX_LIMIT, SharedStats
from instpy.runtime.stat.window import BUCKET_NS

if TYPE_CHECKING:
    from instpy.runtime.plan import ResourcePlan, Sleep

_INF = float("inf")
# A lease is at most 1/LEASE_SPREAD of the window's room per worker slot in use, so what the
# workers' leases leave unused at a bucket's end (given back at their next call) is a small
# share of the limit; near the limit it is no lease at all: every call takes the lock.
LEASE_SPREAD = 16
LEASE_MAX = 256
# A lease is used only until this long before its bucket ends (the calls after take the lock):
# a pass admitted from a lease is then never one that ends, as its caller sees it, in the next
# window, which passes its full limit from the start.
LEASE_GUARD_NS = 100_000_000


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

    return enter, _completer(plan, stats, other, plan.breaker)


def _completer(plan: ResourcePlan, stats: SharedStats, other: Exit,
               breaker: BreakerCheck | None) -> Exit:
    """`exit` of an int token: count the completion (and feed a closed breaker)."""
    clock = plan.clock
    w = stats._w
    shared = breaker if type(breaker) is SharedBreakerCheck else None
    if shared is not None:
        bints = shared._ints
        slow = shared.slow
        max_rt = shared.max_rt_ns

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
        if shared is not None:
            if bints[STATE] == shared.closed and now < shared.good_until \
                    and not (rt > max_rt if slow else bad):
                bints[shared.mine + 2] += 1  # a good call: this worker's row, no lock
            else:
                plan.breaker_done(shared, now, rt, bad)
        elif breaker is not None:
            plan.breaker_done(breaker, now, rt, bad)
        return None

    return exit_


def lean_path(plan: ResourcePlan, stats: SharedStats, generic: Enter,
              other: Exit) -> tuple[Enter, Exit]:
    """`enter`/`exit` of reject flow, isolation and a breaker: one lock section for the
    instance-wide decision (none while this process holds a lease), then isolation's read,
    without the plan's layers."""
    clock = plan.clock
    w = stats._w
    limit = plan.flow_limit
    flow = limit != _INF
    cap = int(min(limit, MAX_LIMIT)) if flow else 0  # passes before + 1 <= limit
    adm = stats._at + ADM
    given = stats._at + ADM_GIVEN
    flow_rule = plan.checks[0].rule if plan.checks else None
    isolation = plan.isolation
    max_inflight = isolation.limit if isolation is not None else -1
    isolation_rule = isolation.rule if isolation is not None else None
    # Isolation must read in-flight after its own pass under the lock: no lease.
    leases = flow and max_inflight < 0
    lease_spread = LEASE_SPREAD
    breaker = plan.breaker
    bints = breaker._ints if type(breaker) is SharedBreakerCheck else None
    # This closure's view of the newest admission bucket (see the module docstring), and of a
    # window it found full; all written with the segment lock held.
    base = top = end = spread = lease_below = 0
    full_end = full_seen = full_given = 0
    if leases:
        stats.give_back_lease()  # taken under another plan's limit

    def enter(lookup: Lookup | None = None, inbound: bool = False,
              sleep: Sleep | None = None) -> object:
        nonlocal base, top, end, spread, lease_below, full_end, full_seen, full_given
        if bints is not None:
            if bints[STATE] & 3:
                return generic(lookup, inbound, sleep)
        elif breaker is not None and breaker.state is not CLOSED:
            return generic(lookup, inbound, sleep)
        now = clock()
        if now >= stats._end:
            stats._roll(now)
        if leases:
            lease = stats._lease
            if now + LEASE_GUARD_NS < lease[0] and next(lease[1], False):
                w[stats._passed] += 1  # a pass of this process's lease: already counted
                return now
        if now < full_end and w[given] == full_given:
            return plan._blocked(now, "flow", flow_rule, full_seen)
        full = False
        acquire = stats._acquire  # (attribute, then call: no method lookup per call)
        release = stats._release
        if not acquire(False):
            stats._seg.wait()
        try:
            w[H_OWNER] = stats._owner
            if flow:
                v = w[adm]
                if now >= end or not base <= v < top:
                    v, prev = stats.admission(now)
                    k = v >> 32
                    base = k << 32
                    end = (k + 1) * BUCKET_NS
                    top = base + cap - prev
                    spread = lease_spread * max(1, w[H_HIGH])
                    # Room for `spread` more after this call: a lease (see `LEASE_SPREAD`).
                    lease_below = top - spread if leases else base
                    if v >= top:
                        full = True
                        full_end = end
                        full_seen = v - base + prev
                        full_given = w[given]
                if not full:
                    if v < lease_below and end == stats._end \
                            and now + LEASE_GUARD_NS < end and not length_hint(stats._lease[1]):
                        extra = min((top - v - 1) // spread, LEASE_MAX)
                        w[adm] = v + 1 + extra
                        stats.lease(extra, end)
                    else:
                        w[adm] = v + 1
                    w[stats._passed] += 1
            else:
                w[stats._passed] += 1
        finally:
            release()
        if full:
            return plan._blocked(now, "flow", flow_rule, full_seen)
        if max_inflight >= 0:
            if w[H_HIGH] != stats._high:
                inflight = stats.inflight  # (re-slices the stripes: a new worker slot)
            else:
                inflight = sum(stats._in_p) - sum(stats._in_c)  # `inflight`, inlined
            if inflight > max_inflight and stats.recount(now) > max_inflight:
                inflight = stats.inflight
                stats.cancel((v >> 32,) if flow else None, now, "isolation")
                return plan._refused(now, "isolation", isolation_rule, inflight - 1)
        return now

    return enter, _completer(plan, stats, other, breaker)


def hot_path(plan: ResourcePlan, stats: SharedStats, generic: Enter,
             other: Exit) -> tuple[Enter, Exit] | None:
    """`enter`/`exit` of a hot-parameter rule over the instance's table, with reject flow and
    a breaker or without: flow's admission and the value's token bucket (or its count in
    flight) in one lock section. A value's calls in flight are given back in one lock
    section at exit, so that a call of a value under a concurrency limit takes the lock once
    going in and once coming out. None when the plan has anything else (isolation, other flow
    behaviours, system rules, degradation): those take the plan's generic path."""
    hot = plan.hot
    qps = hot if type(hot) is SharedHotQpsCheck else None
    held = hot if type(hot) is SharedHotConcurrencyCheck else None
    check: SharedHotQpsCheck | SharedHotConcurrencyCheck
    if qps is not None:
        check = qps
    elif held is not None:
        check = held
    else:
        return None
    concurrency = held is not None
    if plan.isolation is not None or plan.system is not None or plan.degrade is not None \
            or plan.breaker is not None or plan.pass_hooks != ((held,) if concurrency else ()):
        return None
    breakers = [c for c in plan.locked if isinstance(c, BreakerCheck)]
    if len(plan.locked) != 1 + len(breakers) or len(breakers) > 1:
        return None
    breaker = breakers[0] if breakers else None
    bints = breaker._ints if type(breaker) is SharedBreakerCheck else None
    clock = plan.clock
    w = stats._w
    limit = plan.flow_limit
    flow = limit != _INF
    cap = int(min(limit, MAX_LIMIT)) if flow else 0
    adm = stats._at + ADM
    given = stats._at + ADM_GIVEN
    flow_rule = plan.checks[0].rule if flow else None
    table = check._table
    ints = table.table.ints
    floats = table.table.floats
    seg = stats._seg
    find = table.find
    source, name, items, default = check.source, check.name, check.items, check.default
    burst = qps.burst if qps is not None else 0.0
    hot_rule = check.rule
    # Per-value counts the generic path reserved for calls it then refused (see hotspot/shared.py)
    pending = held._pending if held is not None else []
    note = held._note if held is not None else None
    entries: dict[str, int] = {}  # value -> its entry in the table, checked by its digest
    digests: dict[str, int] = {}
    base = top = end = full_end = full_seen = full_given = 0

    def enter(lookup: Lookup | None = None, inbound: bool = False,
              sleep: Sleep | None = None) -> object:
        nonlocal base, top, end, full_end, full_seen, full_given
        if bints is not None:
            if bints[STATE] & 3:
                return generic(lookup, inbound, sleep)
        elif breaker is not None and breaker.state is not CLOSED:
            return generic(lookup, inbound, sleep)
        key: str | None = None
        if lookup is not None:
            try:
                key = key_of(lookup(source, name))
            except Exception as exc:  # the hook's lookup failed: no value, no per-value limit
                plan.events.failure(clock(), plan.resource, "hot_param_lookup", exc)
        now = clock()
        if now >= stats._end:
            stats._roll(now)
        if now < full_end and w[given] == full_given:
            return plan._blocked(now, "flow", flow_rule, full_seen)
        if key is not None:
            value_limit = items.get(key, default) if items else default
            h = digests.get(key, 0)
            if not h:
                h = value_digest(key)
                if len(digests) >= 4096:
                    digests.clear()
                    entries.clear()
                digests[key] = h
        refused = ""
        counted = key
        if pending and held is not None:
            held.settle(stats.lock)
        acquire = stats._acquire
        release = stats._release
        if not acquire(False):
            stats._seg.wait()
        try:
            w[H_OWNER] = stats._owner
            if flow:
                v = w[adm]
                if now >= end or not base <= v < top:
                    v, prev = stats.admission(now)
                    base = v >> 32 << 32
                    end = ((v >> 32) + 1) * BUCKET_NS
                    top = base + cap - prev
                    if v >= top:
                        full_end = end
                        full_seen = v - base + prev
                        full_given = w[given]
                        refused = "flow"
            if key is not None and not refused:
                i = entries.get(key, -1)
                if i < 0 or ints[i * ENTRY + DIGEST] != h:
                    i = find(h, now, value_limit > 0.0)
                    if i >= 0:
                        entries[key] = i
                e = i * ENTRY
                if i < 0:
                    # No entry to take: not limited (fail open), not counted.
                    counted = None
                    if value_limit <= 0.0:
                        refused = "hot_param"
                elif note is not None:
                    if ints[e + INFLIGHT] >= value_limit:
                        if now >= seg.words[H_SWEEP]:
                            seg.sweep(now)  # full: first give back what dead workers held
                        if ints[e + INFLIGHT] >= value_limit:
                            refused = "hot_param"
                    if not refused:
                        ints[e + INFLIGHT] += 1
                        ints[e + LAST_NS] = now
                        note(i, 1)
                elif value_limit <= 0.0:
                    refused = "hot_param"
                else:
                    tokens = floats[e + TOKENS]
                    if tokens < 0.0:  # a new value: its bucket is full
                        floats[e + TOKENS] = value_limit + burst - 1.0
                    else:
                        tokens += (now - ints[e + LAST_NS]) * value_limit / 1e9
                        capacity = value_limit + burst
                        if tokens > capacity:
                            tokens = capacity
                        ints[e + LAST_NS] = now
                        if tokens < 1.0:
                            floats[e + TOKENS] = tokens
                            refused = "hot_param"
                        else:
                            floats[e + TOKENS] = tokens - 1.0
            if not refused:
                if flow:
                    w[adm] = v + 1
                w[stats._passed] += 1
        finally:
            release()
        if refused:
            if refused == "flow":
                return plan._blocked(now, "flow", flow_rule, full_seen)
            return plan._blocked(now, "hot_param", hot_rule, key)
        if concurrency and counted is not None:
            token = TrackedEntry(plan, now)  # its exit gives the value's count back
            token.hot_key = counted
            return token
        return now

    if held is not None:
        plan.complete = _hot_completer(plan, stats, held, entries, breaker)
    return enter, _completer(plan, stats, other, breaker)


def _hot_completer(plan: ResourcePlan, stats: SharedStats, hot: SharedHotConcurrencyCheck,
                   entries: dict[str, int],
                   breaker: BreakerCheck | None) -> Callable[[TrackedEntry, object], None]:
    """`ResourcePlan.complete` of `hot_path` with per-value concurrency: what
    `_complete_full` does for its exit hooks, with the value's entry found from `entries`."""
    clock = plan.clock
    ints = hot._table.table.ints
    find = hot._table.find
    give_back = hot._give_back

    def complete(entry: TrackedEntry, error: object) -> None:
        now = clock()
        rt = now - entry.start_ns
        bad = error is not None and error is not False
        stats.on_complete(now, rt, bad)
        key = entry.hot_key
        if key is not None:
            h = value_digest(key)
            if not stats._acquire(False):
                stats._seg.wait()
            try:
                stats._w[H_OWNER] = stats._owner
                i = entries.get(key, -1)
                if i < 0 or ints[i * ENTRY + DIGEST] != h:
                    i = find(h, now, False)
                if i >= 0:
                    give_back(i)
            finally:
                stats._release()
        change = None
        if type(breaker) is SharedBreakerCheck:
            change = breaker.on_exit(entry, now, rt, bad)
        elif breaker is not None:  # its state is this process's: under the resource lock
            with stats.lock:
                change = breaker.on_exit(entry, now, rt, bad)
        if entry.events is not None:
            plan._emit(now, entry.events)
        if change is not None:
            plan._emit(now, [change])

    return complete

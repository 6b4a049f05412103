"""Circuit breaker: closed -> open -> half-open (probes) -> closed or open again.

Closed, every completed call lands in the breaker's own sliding window (ten slots over
`window_ms`). When the window holds at least `min_requests` calls and the strategy's threshold
is crossed, the breaker opens and blocks every call for `recovery_ms`. The first call after
that half-opens it and goes through as a probe, as do the next ones up to `probes`; all probes
succeeding closes it (with a fresh window), the first failed or slow probe opens it again.
Completions of calls admitted before the breaker opened are ignored while it is not closed, as
Sentinel does.

Counting while closed takes no lock on GIL builds (`count`), and stays exact:

* a slot counts its calls and its bad calls as bytes appended to two `bytearray`s (`append`
  and `len` are single C calls, atomic under the GIL; a byte per call keeps a long window at
  a high rate small); a call appends first and reads after, so of racing calls the last to
  append sees them all: a crossing that persists is never missed, and since every call
  appends exactly once, nothing is counted twice;
* a call appends to `total` before `bad`, and reads `bad` before `total`: what it reads is
  never a higher ratio than the counters held at its second read, so it never opens on a
  ratio that did not occur (the error count and `min_requests` only grow, so they are exact
  in either order);
* the window's total is the current slot's `base` (the earlier slots of the window, summed
  once when the slot starts, under `_roll_lock`) plus its own length;
* a slot is `sealed` before its lengths are folded into the next slot's base, so a thread
  that appended to a slot after it was rolled past sees `sealed` and adds what the fold missed
  (`_late`, under `_roll_lock`);
* opening takes the resource lock and re-checks the state, so exactly one thread opens.

Transitions out of open and half-open, and probes, run under the resource lock (`check` and
`on_exit` are called with it held).
"""

from __future__ import annotations

import threading

from instpy.runtime.circuitbreaker.rule import BreakerRule
from instpy.runtime.entry import TrackedEntry
from instpy.runtime.events import StateChange
from instpy.runtime.stat.store import Lock, ResourceStats

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATE_VALUES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}
_BUCKETS = 10


class _Slot:
    """One tenth of the window: this slot's calls and bad calls, and the earlier slots' sums."""

    __slots__ = ("bad", "base_bad", "base_total", "end_ns", "folded_bad", "folded_total",
                 "index", "sealed", "total", "window")

    def __init__(self, index: int, end_ns: int, base_total: int, base_bad: int,
                 window: int) -> None:
        self.index = index
        self.end_ns = end_ns
        self.total = bytearray()
        self.bad = bytearray()
        self.base_total = base_total
        self.base_bad = base_bad
        self.sealed = False
        self.folded_total = 0
        self.folded_bad = 0
        self.window = window  # which window (reset count) the slot belongs to


class BreakerCheck:
    family = "circuit_breaker"
    __slots__ = ("_ring_bad", "_ring_index", "_ring_total", "_roll_lock", "_slot", "_window",
                 "bucket_ns", "count_errors", "max_rt_ns", "min_requests", "next_retry_ns",
                 "probes_admitted", "probes_ok", "rule", "slow", "state", "threshold")

    def __init__(self, rule: BreakerRule) -> None:
        self._configure(rule)
        self.state = CLOSED
        self.next_retry_ns = 0
        self.probes_admitted = 0
        self.probes_ok = 0
        self._roll_lock = threading.Lock()
        self._window = 0
        self._slot = _Slot(-(1 << 62), -(1 << 62), 0, 0, 0)  # the first call rolls a real one
        # Final counts of the sealed slots, by slot index modulo the window's slot count.
        self._ring_index = [-1] * _BUCKETS
        self._ring_total = [0] * _BUCKETS
        self._ring_bad = [0] * _BUCKETS

    def _configure(self, rule: BreakerRule) -> None:
        """What the rule fixes (the state lives elsewhere in circuitbreaker/shared.py)."""
        self.rule = rule
        self.bucket_ns = max(1, int(rule.window_ms * 1_000_000) // _BUCKETS)
        self.max_rt_ns = int(rule.max_rt_ms * 1_000_000)
        self.slow = rule.strategy == "slow_ratio"
        self.count_errors = rule.strategy == "error_count"
        self.min_requests = rule.min_requests
        self.threshold = rule.threshold

    def crossed(self, bad_n: int, total: int) -> object | None:
        """The value that crosses the threshold with these window counts, else None."""
        if total < self.min_requests:
            return None
        if self.count_errors:
            return bad_n if bad_n >= self.threshold else None
        ratio = bad_n / total
        threshold = self.threshold
        if ratio > threshold or (ratio == 1.0 and threshold == 1.0):
            return ratio
        return None

    # -- closed: lock-free counting ----------------------------------------------------------

    def count(self, now_ns: int, rt_ns: int, error: bool) -> object | None:
        """Count one completion while closed; the value that crossed the threshold (the
        caller then opens under the resource lock, see `open_if_closed`), else None."""
        bad = rt_ns > self.max_rt_ns if self.slow else error
        slot = self._slot
        if now_ns >= slot.end_ns:
            slot = self._roll(now_ns // self.bucket_ns)
        # An earlier time (a thread that stalled since reading the clock) counts in the
        # current slot: never in one that may already be folded.
        slot.total.append(0)
        if bad:
            slot.bad.append(0)
        if slot.sealed:
            slot = self._late(slot)
        bad_n = slot.base_bad + len(slot.bad)  # bad first: see the module docstring
        total = slot.base_total + len(slot.total)
        return self.crossed(bad_n, total)

    def open_if_closed(self, now_ns: int, value: object, lock: Lock) -> StateChange | None:
        """Open after `count` saw the threshold crossed, unless another thread did first."""
        lock.acquire()
        try:
            if self.state is not CLOSED:
                return None
            return self._open(now_ns, CLOSED, value)
        finally:
            lock.release()

    def _roll(self, index: int) -> _Slot:
        with self._roll_lock:
            old = self._slot
            if index <= old.index:
                return old  # another thread rolled first
            self._seal(old)
            ring_index = self._ring_index
            ring_total = self._ring_total
            ring_bad = self._ring_bad
            base_total = base_bad = 0
            for s in range(index - _BUCKETS + 1, index):  # the earlier slots of the window
                i = s % _BUCKETS
                if ring_index[i] == s:
                    base_total += ring_total[i]
                    base_bad += ring_bad[i]
            new = _Slot(index, (index + 1) * self.bucket_ns, base_total, base_bad, self._window)
            self._slot = new
            return new

    def _seal(self, slot: _Slot) -> None:
        slot.sealed = True  # before reading the lengths: a later append then sees it
        bad = slot.folded_bad = len(slot.bad)  # bad first, as in `count`
        total = slot.folded_total = len(slot.total)
        if slot.index >= 0 and slot.window == self._window:
            i = slot.index % _BUCKETS
            self._ring_index[i] = slot.index
            self._ring_total[i] = total
            self._ring_bad[i] = bad

    def _late(self, slot: _Slot) -> _Slot:
        """This thread appended to a slot that was already sealed: add what the fold missed
        to the slot's final counts and to the current slot's base (when still in its window)."""
        with self._roll_lock:
            bad = len(slot.bad)
            total = len(slot.total)
            extra_total = total - slot.folded_total  # added to the bases before `bad`
            extra_bad = bad - slot.folded_bad
            slot.folded_total = total
            slot.folded_bad = bad
            cur = self._slot
            if slot.window != self._window or slot.index < 0:
                return cur  # counted in a window that was reset: dropped, like the window
            i = slot.index % _BUCKETS
            if self._ring_index[i] == slot.index:
                self._ring_total[i] += extra_total
                self._ring_bad[i] += extra_bad
                if cur is not slot and cur.index - slot.index < _BUCKETS:
                    cur.base_total += extra_total
                    cur.base_bad += extra_bad
            return cur

    def _reset_window(self, index: int) -> None:
        with self._roll_lock:
            old = self._slot
            self._window += 1
            old.sealed = True  # late appends to it are dropped with the old window
            self._ring_index = [-1] * _BUCKETS
            self._ring_total = [0] * _BUCKETS
            self._ring_bad = [0] * _BUCKETS
            self._slot = _Slot(index, (index + 1) * self.bucket_ns, 0, 0, self._window)

    def window_counts(self) -> tuple[int, int]:
        """(calls, bad calls) in the window as of the current slot (tests, reporting)."""
        slot = self._slot
        bad = slot.base_bad + len(slot.bad)
        return slot.base_total + len(slot.total), bad

    # -- under the resource lock -------------------------------------------------------------

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        state = self.state
        if state is CLOSED:
            return None
        if state is OPEN:
            if now_ns < self.next_retry_ns:
                return OPEN
            self.state = HALF_OPEN
            self.probes_admitted = 1
            self.probes_ok = 0
            entry.probe = True
            entry.events = [StateChange(self.rule.resource, self.rule, OPEN, HALF_OPEN,
                                        "recovery timeout elapsed")]
            return None
        if self.probes_admitted < self.rule.probes:
            self.probes_admitted += 1
            entry.probe = True
            return None
        return HALF_OPEN

    def on_exit(self, entry: TrackedEntry, now_ns: int, rt_ns: int,
                error: bool) -> StateChange | None:
        """A completion, with the resource lock held."""
        state = self.state
        if state is not CLOSED:
            # A call entered while closed took the lock-free path: an Entry without `probe`.
            if state is HALF_OPEN and getattr(entry, "probe", False):
                bad = rt_ns > self.max_rt_ns if self.slow else error
                return self._probe_done(now_ns, bad, rt_ns)
            return None
        value = self.count(now_ns, rt_ns, error)
        if value is None or self.state is not CLOSED:
            return None
        return self._open(now_ns, CLOSED, value)

    def _open(self, now_ns: int, previous: str, value: object) -> StateChange:
        self.state = OPEN
        self.next_retry_ns = now_ns + int(self.rule.recovery_ms * 1_000_000)
        return StateChange(self.rule.resource, self.rule, previous, OPEN, value)

    def _probe_done(self, now_ns: int, bad: bool, rt_ns: int) -> StateChange | None:
        if bad:
            what = f"probe slow ({rt_ns / 1e6:.1f} ms)" if self.rule.strategy == "slow_ratio" \
                else "probe failed"
            return self._open(now_ns, HALF_OPEN, what)
        self.probes_ok += 1
        if self.probes_ok < self.rule.probes:
            return None
        self.state = CLOSED
        self._reset_window(now_ns // self.bucket_ns)
        return StateChange(self.rule.resource, self.rule, HALF_OPEN, CLOSED,
                           f"{self.probes_ok} probe(s) succeeded")

"""In-process sliding-window statistics for one resource (Sentinel's LeapArray, simplified).

The window is one second made of two 500 ms buckets (Sentinel's default second-level metric).
A bucket is an object for one 500 ms slice of the clock; the first event past the current
bucket's end rolls a new one in (under `_roll_lock`, twice a second at most), so no background
thread ever touches the counters and the per-call path takes no lock.

What is exact under the GIL, and why:

* passes: one item appended to the bucket's `deque` (`append`, `pop` and `len` are single C
  calls, atomic under the GIL; a deque appends without resizing, half the cost of a
  bytearray's append). Flow admission appends first, then reads the window: whichever of
  two racing calls appends last sees the other, so a window never passes more than `qps`.
  A later block takes its item back (`pop`). Memory: 8 bytes per pass in the live buckets.
* in flight: one item per call in flight, appended on pass and popped on exit; the isolation
  check reads it after its own append, so concurrency never exceeds its max.
* blocks, completions, errors: `itertools.count` steps (atomic), read back from the counter's
  repr by the reporting side.
* RT sum and min RT are plain `+=` / compare-and-store: between those bytecodes a thread switch
  can (rarely) lose an update. They are only reported (metrics, the system rules' average RT
  and BBR estimate) and never decide a per-resource limit.

Free-threaded builds have no GIL to make those operations atomic: `ResourcePlan` then runs
every call's statistics under `lock` (chosen once, at plan construction).

A call whose thread stalls for longer than a bucket between reading the clock and counting
is counted in the bucket it finds (statistics-only) or re-timed (flow admission).
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections import deque

BUCKET_NS = 500_000_000
BUCKETS = 2
WINDOW_NS = BUCKET_NS * BUCKETS
_NO_RT = 1 << 62
GONE_PASSES = 1 << 40  # what a bucket that left the window answers for its pass count
# True on free-threaded builds (3.13t+): the lock-free counting below then needs the lock.
FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()


def peek(counter: itertools.count[int]) -> int:
    """The next value of `counter` without taking it (reporting side only)."""
    text = repr(counter)  # "count(N)"
    return int(text[text.index("(") + 1:text.index(")")])


class Bucket:
    """Counters of one 500 ms slice; `prev`/`next` link the neighbours a flow window spans."""

    __slots__ = ("blocked", "completed", "end_ns", "errors", "next", "passed", "prev",
                 "rt_min", "rt_sum", "start_ns")

    def __init__(self, start_ns: int, prev: Bucket | None) -> None:
        self.start_ns = start_ns
        self.end_ns = start_ns + BUCKET_NS
        self.passed: deque[None] = deque()  # one item per pass: len() is the exact count
        self.blocked = itertools.count()
        self.completed = itertools.count()
        self.errors = itertools.count()
        self.rt_sum = 0
        self.rt_min = _NO_RT
        self.prev: Bucket = prev if prev is not None else _EMPTY
        self.next: Bucket | None = None


class _Gone(deque[None]):
    """The pass count of a bucket that left the window: larger than any limit."""

    def __len__(self) -> int:
        return GONE_PASSES


_EMPTY = Bucket.__new__(Bucket)  # the slice before the first one, or a slice with no traffic
_GONE = Bucket.__new__(Bucket)  # a dropped predecessor: a call that finds it is re-timed
for _b, _passed in ((_EMPTY, deque[None]()), (_GONE, _Gone())):
    _b.start_ns = _b.end_ns = -(1 << 62)  # never inside a window
    _b.passed = _passed
    _b.blocked, _b.completed, _b.errors = itertools.count(), itertools.count(), itertools.count()
    _b.rt_sum, _b.rt_min, _b.next = 0, _NO_RT, None
    _b.prev = _GONE


def window_admit(cur: Bucket, limit: float) -> int:
    """Count a pass in `cur` if the window ending with it has passed fewer than `limit`:
    0 when counted, else the window's count including this call (not counted). A count of
    GONE_PASSES or more means a neighbour left the window: the caller re-times the call.

    The pass is appended before the window is read, so of two racing calls the later
    appender sees the earlier one (see the module docstring)."""
    passed = cur.passed
    passed.append(None)
    n = len(passed)
    seen = n + len(cur.prev.passed)
    nxt = cur.next
    if nxt is not None:
        later = n + len(nxt.passed)
        if later > seen:
            seen = later
    if seen > limit:
        passed.pop()
        return seen
    return 0


class LocalStats:
    """Counters for one resource: windowed (pass, block, complete, error, RT) and totals.

    `lock` guards nothing on the GIL build's per-call path; plans on free-threaded builds and
    checks with multi-field state (warm-up, throttling, hot parameters, breaker transitions)
    take it.
    """

    __slots__ = ("_flushed", "_inflight", "_roll_lock", "cur", "lock", "total_blocked")

    def __init__(self) -> None:
        # Re-entrant on free-threaded builds: the serial plan holds it around the checks
        # that take it themselves.
        self.lock: threading.Lock | threading.RLock = (
            threading.RLock() if FREE_THREADED else threading.Lock())
        self._roll_lock = threading.Lock()
        self._inflight: deque[None] = deque()  # one item per call in flight
        self.cur = Bucket(-BUCKET_NS, None)  # ends at 0: the first event rolls a real one
        # Totals since start = what dropped buckets held + the live buckets.
        self._flushed = [0, 0, 0, 0]  # passed, completed, errors, rt_ns
        self.total_blocked: dict[str, int] = {}

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- rolling -----------------------------------------------------------------------------

    def bucket(self, now_ns: int) -> Bucket:
        """The current bucket, rolled forward when `now_ns` is past its end."""
        cur = self.cur
        if now_ns < cur.end_ns:
            return cur
        return self.roll(now_ns)

    def roll(self, now_ns: int) -> Bucket:
        with self._roll_lock:
            cur = self.cur
            if now_ns < cur.end_ns:
                return cur  # another thread rolled first
            start = now_ns - now_ns % BUCKET_NS
            adjacent = cur.end_ns == start
            new = Bucket(start, cur if adjacent else None)
            old = cur.prev
            if old is not _EMPTY and old is not _GONE:
                self._flush(old)
                old.prev = _GONE  # unlinks the chain so dropped buckets are freed at once
                old.next = None
            if adjacent:
                cur.next = new
            else:
                self._flush(cur)
                cur.prev = _GONE
            self.cur = new
            return new

    def _flush(self, b: Bucket) -> None:
        f = self._flushed
        f[0] += len(b.passed)
        f[1] += peek(b.completed)
        f[2] += peek(b.errors)
        f[3] += b.rt_sum

    # -- per call ----------------------------------------------------------------------------

    def floor_ns(self) -> int:
        """The start of the current bucket: no call is counted before it."""
        return self.cur.start_ns

    def on_pass(self, now_ns: int) -> Bucket:
        """Count a pass (and one more in flight); the bucket it went to, for `cancel`."""
        cur = self.cur
        if now_ns >= cur.end_ns:
            cur = self.roll(now_ns)
        cur.passed.append(None)
        self._inflight.append(None)
        return cur

    def admit(self, now_ns: int, limit: float) -> object:
        """Count a pass if the window has passed fewer than `limit`: the bucket it was counted
        in (for `cancel`), else the window's pass count seen. A pass also counts in flight.

        Exact without a lock under the GIL: the pass is appended before the window is read,
        so of two racing calls the later appender sees the earlier one. Retries with a fresh
        clock read are left to the caller (a bucket that left the window answers -1).
        """
        cur = self.cur
        if now_ns >= cur.end_ns:
            cur = self.roll(now_ns)
        elif now_ns < cur.start_ns:
            return -1  # this thread stalled past its bucket: re-time it
        seen = window_admit(cur, limit)
        if seen:
            return -1 if seen >= GONE_PASSES else seen - 1
        self._inflight.append(None)
        return cur

    def cancel(self, token: object, now_ns: int, family: str) -> None:
        """Take back a pass counted by `admit`/`on_pass` and count a block instead."""
        if isinstance(token, Bucket) and token.passed:
            token.passed.pop()
        if self._inflight:
            self._inflight.pop()
        self.on_block(now_ns, family)

    def on_block(self, now_ns: int, family: str) -> None:
        next(self.bucket(now_ns).blocked)
        blocked = self.total_blocked
        blocked[family] = blocked.get(family, 0) + 1  # reporting only (see module doc)

    def on_complete(self, now_ns: int, rt_ns: int, error: bool) -> None:
        cur = self.cur
        if now_ns >= cur.end_ns:
            cur = self.roll(now_ns)
        next(cur.completed)
        cur.rt_sum += rt_ns
        if rt_ns < cur.rt_min:
            cur.rt_min = rt_ns
        if error:
            next(cur.errors)
        self._inflight.pop()

    # -- reading -----------------------------------------------------------------------------

    def _live(self, now_ns: int) -> tuple[Bucket, ...]:
        cur = self.cur
        start = now_ns - now_ns % BUCKET_NS - BUCKET_NS  # the window's first slice
        return tuple(b for b in (cur, cur.prev) if b.start_ns >= start and b.start_ns <= now_ns)

    def totals(self) -> tuple[int, int, int, int]:
        """(passed, completed, errors, rt_ns) since the start of the process."""
        f = self._flushed
        cur = self.cur
        live = [b for b in (cur, cur.prev) if b is not _EMPTY and b is not _GONE]
        return (f[0] + sum(len(b.passed) for b in live),
                f[1] + sum(peek(b.completed) for b in live),
                f[2] + sum(peek(b.errors) for b in live),
                f[3] + sum(b.rt_sum for b in live))

    def passed(self, now_ns: int) -> int:
        """Requests passed in the last second (both live buckets)."""
        return sum(len(b.passed) for b in self._live(now_ns))

    def window(self, now_ns: int) -> tuple[int, int, int, int, int, int]:
        """(passed, blocked, completed, errors, rt_sum_ns, rt_min_ns or 0) over the last second."""
        live = self._live(now_ns)
        rt_min = min((b.rt_min for b in live), default=_NO_RT)
        return (sum(len(b.passed) for b in live), sum(peek(b.blocked) for b in live),
                sum(peek(b.completed) for b in live), sum(peek(b.errors) for b in live),
                sum(b.rt_sum for b in live), 0 if rt_min == _NO_RT else rt_min)


class InboundStats(LocalStats):
    """All inbound traffic of the process, plus the history BBR needs.

    BBR compares in-flight requests with max completed QPS x min RT; both come from the last
    ten one-second slices, so a short lull does not collapse the estimate. The engine updates
    it under `lock` (system rules are not on the lock-free path).
    """

    __slots__ = ("_history_completed", "_history_min_rt", "_history_slices")
    HISTORY = 10

    def __init__(self) -> None:
        super().__init__()
        self._history_slices = [-1] * self.HISTORY
        self._history_completed = [0] * self.HISTORY
        self._history_min_rt = [_NO_RT] * self.HISTORY

    def on_complete(self, now_ns: int, rt_ns: int, error: bool) -> None:
        super().on_complete(now_ns, rt_ns, error)
        s = now_ns // 1_000_000_000
        i = s % self.HISTORY
        if self._history_slices[i] != s:
            self._history_slices[i] = s
            self._history_completed[i] = 0
            self._history_min_rt[i] = _NO_RT
        self._history_completed[i] += 1
        if rt_ns < self._history_min_rt[i]:
            self._history_min_rt[i] = rt_ns

    def capacity(self, now_ns: int) -> float:
        """Max completed per second x min RT in seconds over the history (BBR's in-flight bound).

        The current (incomplete) second counts too: under a sudden rise it is the best sample.
        With no completed request yet there is no estimate, so nothing is bounded (infinity).
        """
        s = now_ns // 1_000_000_000
        max_completed = 0
        min_rt = _NO_RT
        for i in range(self.HISTORY):
            if s - self._history_slices[i] < self.HISTORY:
                max_completed = max(max_completed, self._history_completed[i])
                min_rt = min(min_rt, self._history_min_rt[i])
        if max_completed == 0 or min_rt == _NO_RT:
            return float("inf")
        return max_completed * min_rt / 1e9

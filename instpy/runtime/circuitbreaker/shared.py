"""A circuit breaker whose state is the instance's: one breaker for all the workers of a
pre-fork server, in a record of the segment (shared/state.py).

The state, the time it may half-open, the probes admitted and passed, and the window are
fields of the record; the window is the same ten slots over `window_ms` as the per-process
breaker's, kept with the window's running sums (`TOTAL`, `BAD`) so that a completion counted
there adds to two fields and reads two, and only a slot roll sums the ring. Every transition,
every probe and every bad (failed or slow) completion is decided under the segment lock, so
exactly `probes` calls pass while half-open across the workers and every bad completion is
checked against the calls of all of them.

Good completions while closed need no lock (`count_good`): a good call only lowers the ratio
and leaves the error count alone, so it can cross the threshold only by bringing the window to
`min_requests`, or as the first call of a new slot (older calls left the window), both of which
the per-process breaker checks too. Each worker counts its other good calls in its own row of
the record (`PENDING`, one writer, like the statistics' stripes), tagged with the generation and
the slot they belong to; a worker's locked section folds its row into the ring. A check sums
the ring and the rows of the other workers whose tag is in the window, so a bad call sees every
good call that completed before it. A worker takes the lock-free way only once its locked
section saw the window at `min_requests` or more in the current slot: then no good call of
that slot can be the one that reaches it.

`STATE` holds the state in its two low bits and, above them, the window's generation, which
closing (with a fresh window) increments: a worker's lock-free count compares one word with the
value it noted, so it stops at once when another worker opened the breaker or reset the window,
and rows tagged with an older generation count no more.
"""

from __future__ import annotations

import weakref

from instpy.runtime.circuitbreaker.check import _BUCKETS, CLOSED, HALF_OPEN, OPEN, BreakerCheck
from instpy.runtime.circuitbreaker.rule import BreakerRule
from instpy.runtime.entry import TrackedEntry
from instpy.runtime.events import StateChange
from instpy.runtime.shared.segment import H_HIGH, H_OWNER, MAX_WORKERS, Segment
from instpy.runtime.shared.state import SharedState, State
from instpy.runtime.stat.store import Lock, ResourceStats

STATE, NEXT_RETRY_NS, PROBES_ADMITTED, PROBES_OK, SLOT, TOTAL, BAD, RING = range(8)
PENDING = RING + 3 * _BUCKETS  # ring: (slot index, calls, bad calls) per slot
ROW = 3  # per worker slot: generation, slot index, good calls not yet in the ring
FIELDS = PENDING + ROW * MAX_WORKERS
_NAMES = (CLOSED, OPEN, HALF_OPEN)
_CODES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}
_NO_SLOT = -(1 << 62)


# The breakers of each segment in this process, whose per-process values a fork renews.
_live: weakref.WeakKeyDictionary[Segment, weakref.WeakSet[SharedBreakerCheck]] = \
    weakref.WeakKeyDictionary()


def _rebind(live: weakref.WeakSet[SharedBreakerCheck]) -> None:
    for check in list(live):
        check._bind()


def init(state: State) -> None:
    ints = state.ints
    ints[SLOT] = _NO_SLOT
    for i in range(_BUCKETS):
        ints[RING + 3 * i] = _NO_SLOT


class SharedBreakerCheck(BreakerCheck):
    """`BreakerCheck` over a `SharedState`: same rule semantics, one state per instance.

    Per process (renewed after a fork): `mine`, this worker's row; `closed`, the `STATE` word
    under which its lock-free counting was allowed; `good_until`, the end of the slot it was
    allowed for (0: take the lock)."""

    __slots__ = ("__weakref__", "_ints", "_seg", "closed", "good_until", "mine",
                 "shared_state")

    def __init__(self, rule: BreakerRule, state: SharedState) -> None:
        self._configure(rule)
        self.shared_state = state
        self._ints = state.ints
        self._seg = state.segment
        self._bind()
        live = _live.get(self._seg)
        if live is None:  # one rebind per segment for all its breakers (rules come and go)
            live = _live[self._seg] = weakref.WeakSet()
            self._seg.rebind.append(lambda: _rebind(live))
        live.add(self)

    def _bind(self) -> None:
        worker = self._seg.worker
        self.mine = PENDING + ROW * worker if worker >= 0 else -1
        self.closed = -1
        self.good_until = 0

    @property
    def state(self) -> str:
        """Read without the lock on every call: one aligned word."""
        return _NAMES[self._ints[STATE] & 3]

    @state.setter
    def state(self, value: str) -> None:
        ints = self._ints
        ints[STATE] = ints[STATE] & ~3 | _CODES[value]

    @property
    def next_retry_ns(self) -> int:
        return self._ints[NEXT_RETRY_NS]

    @next_retry_ns.setter
    def next_retry_ns(self, value: int) -> None:
        self._ints[NEXT_RETRY_NS] = value

    # -- the window, with the segment lock held ----------------------------------------------

    def _advance(self, index: int) -> None:
        """Make `index` the current slot: clear its ring entry, re-sum the window."""
        ints = self._ints
        r = RING + 3 * (index % _BUCKETS)
        if ints[r] != index:
            ints[r] = index
            ints[r + 1] = 0
            ints[r + 2] = 0
        ints[SLOT] = index
        total = bad = 0
        for i in range(_BUCKETS):
            e = RING + 3 * i
            if index - _BUCKETS < ints[e] <= index:
                total += ints[e + 1]
                bad += ints[e + 2]
        ints[TOTAL] = total
        ints[BAD] = bad

    def _fold(self, generation: int, index: int) -> None:
        """Move this worker's good calls not yet in the ring into the slot they were counted
        in (dropped if that slot left the window, or belongs to a window since reset)."""
        ints = self._ints
        mine = self.mine
        if mine < 0:
            return
        n = ints[mine + 2]
        if not n:
            return
        ints[mine + 2] -= n  # not `= 0`: this process's other threads may count meanwhile
        slot = ints[mine + 1]
        if ints[mine] == generation and index - _BUCKETS < slot <= index:
            r = RING + 3 * (slot % _BUCKETS)
            if ints[r] == slot:
                ints[r + 1] += n
                ints[TOTAL] += n

    def _pending(self, generation: int, index: int, skip: int) -> int:
        """The workers' good calls not yet in the ring, in the window at `index`, but for
        the row `skip`."""
        ints = self._ints
        n = 0
        end = PENDING + ROW * self._seg.words[H_HIGH]
        for row in range(PENDING, end, ROW):
            if row != skip and ints[row] == generation \
                    and index - _BUCKETS < ints[row + 1] <= index:
                n += ints[row + 2]
        return n

    def count(self, now_ns: int, rt_ns: int, error: bool) -> object | None:
        """Count a completion while closed, under the lock: the value that crosses the
        threshold (the caller then opens, see `open_if_closed`), else None. Allows this
        worker's lock-free counting of good calls for the rest of the slot once the window
        holds `min_requests` calls."""
        bad = rt_ns > self.max_rt_ns if self.slow else error
        ints = self._ints
        seg = self._seg
        if not seg.acquire(False):
            seg.wait()
        try:
            seg.words[H_OWNER] = seg.worker + 1
            word = ints[STATE]
            if word & 3:
                return None  # opened meanwhile: ignored, as in `on_exit`
            generation = word >> 2
            index = now_ns // self.bucket_ns
            current = ints[SLOT]
            rolled = index > current
            if rolled:
                self._advance(index)
            else:
                index = current  # a stalled thread counts in the current slot
            self._fold(generation, index)
            r = RING + 3 * (index % _BUCKETS)
            ints[r + 1] += 1
            ints[TOTAL] += 1
            if bad:
                ints[r + 2] += 1
                ints[BAD] += 1
            total = ints[TOTAL] + self._pending(generation, index, self.mine)
            if total >= self.min_requests and self.mine >= 0:
                # Later good calls of this slot see more than `min_requests`: none of them
                # can cross, so they count in this worker's row (`count_good`).
                mine = self.mine
                ints[mine] = generation
                ints[mine + 1] = index
                self.closed = word
                self.good_until = (index + 1) * self.bucket_ns
            else:
                self.good_until = 0
            if not bad and total != self.min_requests and not rolled:
                return None
            return self.crossed(ints[BAD], total)
        finally:
            seg.release()

    def count_good(self, now_ns: int) -> bool:
        """Count a good completion without the lock, if this worker may (see the module
        docstring); False: call `count`. (shared/path.py inlines this.)"""
        if self._ints[STATE] != self.closed or now_ns >= self.good_until or self.mine < 0:
            return False
        self._ints[self.mine + 2] += 1
        return True

    def window_counts(self) -> tuple[int, int]:
        ints = self._ints
        seg = self._seg
        seg.lock()
        try:
            word = ints[STATE]
            return ints[TOTAL] + self._pending(word >> 2, ints[SLOT], -1), ints[BAD]
        finally:
            seg.release()

    # -- transitions -------------------------------------------------------------------------

    def open_if_closed(self, now_ns: int, value: object, lock: Lock) -> StateChange | None:
        """Open after `count` saw the threshold crossed, unless another thread or worker did
        first (`lock`, this process's, is not needed: the segment lock decides)."""
        return self._open_if_closed(now_ns, value)

    def _open_if_closed(self, now_ns: int, value: object) -> StateChange | None:
        seg = self._seg
        seg.lock()
        try:
            if self._ints[STATE] & 3:
                return None
            return self._open(now_ns, CLOSED, value)
        finally:
            seg.release()

    def _open(self, now_ns: int, previous: str, value: object) -> StateChange:
        ints = self._ints
        ints[STATE] = ints[STATE] & ~3 | _CODES[OPEN]
        ints[NEXT_RETRY_NS] = now_ns + int(self.rule.recovery_ms * 1_000_000)
        return StateChange(self.rule.resource, self.rule, previous, OPEN, value)

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        ints = self._ints
        if not ints[STATE] & 3:
            return None
        seg = self._seg
        seg.lock()
        try:
            word = ints[STATE]
            state = _NAMES[word & 3]
            if state is CLOSED:
                return None
            if state is OPEN:
                if now_ns < ints[NEXT_RETRY_NS]:
                    return OPEN
                ints[STATE] = word & ~3 | _CODES[HALF_OPEN]
                ints[PROBES_ADMITTED] = 1
                ints[PROBES_OK] = 0
                entry.probe = True
                entry.events = [StateChange(self.rule.resource, self.rule, OPEN, HALF_OPEN,
                                            "recovery timeout elapsed")]
                return None
            if ints[PROBES_ADMITTED] < self.rule.probes:
                ints[PROBES_ADMITTED] += 1
                entry.probe = True
                return None
            return HALF_OPEN
        finally:
            seg.release()

    def on_exit(self, entry: TrackedEntry, now_ns: int, rt_ns: int,
                error: bool) -> StateChange | None:
        if not self._ints[STATE] & 3:
            bad = rt_ns > self.max_rt_ns if self.slow else error
            if not bad and self.count_good(now_ns):
                return None
            value = self.count(now_ns, rt_ns, error)
            return None if value is None else self._open_if_closed(now_ns, value)
        if not getattr(entry, "probe", False):
            return None  # entered closed: ignored while not closed
        bad = rt_ns > self.max_rt_ns if self.slow else error
        seg = self._seg
        seg.lock()
        try:
            if self._ints[STATE] & 3 != _CODES[HALF_OPEN]:
                return None
            return self._probe_done(now_ns, bad, rt_ns)
        finally:
            seg.release()

    def _probe_done(self, now_ns: int, bad: bool, rt_ns: int) -> StateChange | None:
        ints = self._ints
        if bad:
            what = f"probe slow ({rt_ns / 1e6:.1f} ms)" if self.rule.strategy == "slow_ratio" \
                else "probe failed"
            return self._open(now_ns, HALF_OPEN, what)
        ints[PROBES_OK] += 1
        if ints[PROBES_OK] < self.rule.probes:
            return None
        ints[STATE] = ((ints[STATE] >> 2) + 1) << 2  # closed, in a new generation
        self._reset_window(now_ns // self.bucket_ns)
        return StateChange(self.rule.resource, self.rule, HALF_OPEN, CLOSED,
                           f"{ints[PROBES_OK]} probe(s) succeeded")

    def _reset_window(self, index: int) -> None:
        """A fresh window (the workers' rows of the older generation count no more)."""
        ints = self._ints
        for i in range(_BUCKETS):
            ints[RING + 3 * i] = _NO_SLOT
        self._advance(index)

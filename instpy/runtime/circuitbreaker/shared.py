"""A circuit breaker whose state is the instance's: one breaker for all the workers of a
pre-fork server, in a record of the segment (shared/state.py), every change under the segment
lock.

The state, the time it may half-open, the probes admitted and passed, and the window are
fields of the record; the window is the same ten slots over `window_ms` as the per-process
breaker's, kept with the window's running sums (`TOTAL`, `BAD`) so that a completion adds to
two fields and reads two, and only a slot roll sums the ring. Every worker sees the state
another one set at its next call; the worker that made a transition reports it (events).
Exactly `probes` calls pass while half-open, across the workers: admissions are counted in the
record under the lock.
"""

from __future__ import annotations

from instpy.runtime.circuitbreaker.check import _BUCKETS, CLOSED, HALF_OPEN, OPEN, BreakerCheck
from instpy.runtime.circuitbreaker.rule import BreakerRule
from instpy.runtime.entry import TrackedEntry
from instpy.runtime.events import StateChange
from instpy.runtime.shared.segment import H_OWNER
from instpy.runtime.shared.state import SharedState, State
from instpy.runtime.stat.store import Lock, ResourceStats

STATE, NEXT_RETRY_NS, PROBES_ADMITTED, PROBES_OK, SLOT, TOTAL, BAD, RING = range(8)
FIELDS = RING + 3 * _BUCKETS  # ring: (slot index, calls, bad calls) per slot
_NAMES = (CLOSED, OPEN, HALF_OPEN)
_CODES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}
_NO_SLOT = -(1 << 62)


def init(state: State) -> None:
    ints = state.ints
    ints[SLOT] = _NO_SLOT
    for i in range(_BUCKETS):
        ints[RING + 3 * i] = _NO_SLOT


class SharedBreakerCheck(BreakerCheck):
    """`BreakerCheck` over a `SharedState`: same rule semantics, one state per instance."""

    __slots__ = ("_ints", "_seg", "shared_state")

    def __init__(self, rule: BreakerRule, state: SharedState) -> None:
        self._configure(rule)
        self.shared_state = state
        self._ints = state.ints
        self._seg = state.segment

    @property
    def state(self) -> str:
        """Read without the lock on every call: one aligned word."""
        return _NAMES[self._ints[STATE]]

    @state.setter
    def state(self, value: str) -> None:
        self._ints[STATE] = _CODES[value]

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

    def count(self, now_ns: int, rt_ns: int, error: bool) -> object | None:
        bad = rt_ns > self.max_rt_ns if self.slow else error
        ints = self._ints
        seg = self._seg
        if not seg.acquire(False):
            seg.wait()
        try:
            seg.words[H_OWNER] = seg.worker + 1
            index = now_ns // self.bucket_ns
            current = ints[SLOT]
            rolled = index > current
            if rolled:
                self._advance(index)
            else:
                index = current  # a stalled thread counts in the current slot
            r = RING + 3 * (index % _BUCKETS)
            ints[r + 1] += 1
            total = ints[TOTAL] + 1
            ints[TOTAL] = total
            if bad:
                ints[r + 2] += 1
                ints[BAD] += 1
            elif total != self.min_requests and not rolled:
                # A good call lowers the ratio and leaves the error count: it crosses only
                # by bringing the window to `min_requests`, or after older calls left it.
                return None
            return self.crossed(ints[BAD], total)
        finally:
            seg.release()

    def window_counts(self) -> tuple[int, int]:
        ints = self._ints
        return ints[TOTAL], ints[BAD]

    # -- transitions -------------------------------------------------------------------------

    def open_if_closed(self, now_ns: int, value: object, lock: Lock) -> StateChange | None:
        """Open after `count` saw the threshold crossed, unless another thread or worker did
        first (`lock`, this process's, is not needed: the segment lock decides)."""
        return self._open_if_closed(now_ns, value)

    def _open_if_closed(self, now_ns: int, value: object) -> StateChange | None:
        seg = self._seg
        seg.lock()
        try:
            if self._ints[STATE] != 0:
                return None
            return self._open(now_ns, CLOSED, value)
        finally:
            seg.release()

    def _open(self, now_ns: int, previous: str, value: object) -> StateChange:
        ints = self._ints
        ints[STATE] = _CODES[OPEN]
        ints[NEXT_RETRY_NS] = now_ns + int(self.rule.recovery_ms * 1_000_000)
        return StateChange(self.rule.resource, self.rule, previous, OPEN, value)

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        ints = self._ints
        if ints[STATE] == 0:
            return None
        seg = self._seg
        seg.lock()
        try:
            state = _NAMES[ints[STATE]]
            if state is CLOSED:
                return None
            if state is OPEN:
                if now_ns < ints[NEXT_RETRY_NS]:
                    return OPEN
                ints[STATE] = _CODES[HALF_OPEN]
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
        if self._ints[STATE] == 0:
            value = self.count(now_ns, rt_ns, error)
            return None if value is None else self._open_if_closed(now_ns, value)
        if not getattr(entry, "probe", False):
            return None  # entered closed: ignored while not closed
        bad = rt_ns > self.max_rt_ns if self.slow else error
        seg = self._seg
        seg.lock()
        try:
            if self._ints[STATE] != _CODES[HALF_OPEN]:
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
        ints[STATE] = 0
        self._reset_window(now_ns // self.bucket_ns)
        return StateChange(self.rule.resource, self.rule, HALF_OPEN, CLOSED,
                           f"{ints[PROBES_OK]} probe(s) succeeded")

    def _reset_window(self, index: int) -> None:
        ints = self._ints
        for i in range(_BUCKETS):
            ints[RING + 3 * i] = _NO_SLOT
        self._advance(index)

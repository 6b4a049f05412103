"""All inbound traffic of an instance in one record, every update under the segment lock.

The system rules read the inbound record on every inbound call (in flight, the window's
passes, completions and RT, BBR's capacity), so its counters are instance-wide words that a
read takes in a few loads, rather than per-worker stripes to sum (stat/shared.py).

Record layout (words from the record's offset):

    0, 1   key                                     2      in flight (all workers)
    3      kind (INBOUND_KIND)
    4..10  bucket 0: start_ns, passed, blocked, completed, errors, rt_sum_ns, rt_min_ns
    11..17 bucket 1: the same                      18..21 totals of buckets that left the window
    22..27 blocked since start, per family         32..   in flight per worker slot

The window is two 500 ms buckets, as in stat/window.py; bucket `k` (k = now // 500 ms) lives
in slot `k % 2`. A call that finds its slot holding an older bucket rolls it (folding its counts
into the totals); a call whose clock read is older than the newest bucket (a stalled thread,
another process that rolled first) is counted in the newest. A dead worker's in-flight word is
what a sweep takes back (`reclaim`). BBR's ten one-second slices live in the segment header.
"""

from __future__ import annotations

from instpy.runtime.chain import FAMILIES
from instpy.runtime.shared.record import SegmentRecord
from instpy.runtime.shared.segment import H_OWNER, HISTORY_AT, RECORD_HEAD
from instpy.runtime.stat.window import BUCKET_NS

INBOUND_KIND = 1
NO_RT = 1 << 62
INFLIGHT, KIND, B0, B1, FLUSHED, BLOCKED, PER_WORKER = 2, 3, 4, 11, 18, 22, RECORD_HEAD
_FAMILY = {name: i for i, name in enumerate(FAMILIES)}
_HISTORY = 10


def init_inbound(w: memoryview, at: int) -> None:
    """A new record: both buckets outside any window, no minimum RT yet."""
    w[at + KIND] = INBOUND_KIND
    for b in (B0, B1):
        w[at + b] = -4 * BUCKET_NS
        w[at + b + 6] = NO_RT


def reclaim(w: memoryview, at: int, slot: int) -> None:
    """With the lock held: give back what the dead worker in `slot` held in flight."""
    held = w[at + PER_WORKER + slot]
    if held:
        w[at + INFLIGHT] -= held
        w[at + PER_WORKER + slot] = 0


class SharedInboundStats(SegmentRecord):
    """The inbound record. `lock` is this process's (the plan takes it around inbound
    updates); every counter update also takes the segment's."""

    __slots__ = ("_mine",)

    def _bind(self) -> None:
        super()._bind()
        self._mine = self._at + PER_WORKER + self._seg.worker

    @property
    def inflight(self) -> int:
        return int(self._w[self._at + INFLIGHT])

    def _take(self) -> None:
        if not self._acquire(False):
            self._seg.wait()
        self._w[H_OWNER] = self._owner

    # -- with the segment lock held ----------------------------------------------------------

    def _current(self, now_ns: int) -> tuple[int, int, int]:
        """(slot offset, other slot offset, bucket start) of the newest bucket at or after
        `now_ns`, rolling a slot that holds an older bucket."""
        w = self._w
        at = self._at
        k = now_ns // BUCKET_NS
        newest = max(w[at + B0], w[at + B1])
        if k * BUCKET_NS < newest:
            k = newest // BUCKET_NS  # counted in the newest bucket
        cur = at + (B1 if k & 1 else B0)
        start = k * BUCKET_NS
        if w[cur] != start:
            f = at + FLUSHED
            w[f] += w[cur + 1]
            w[f + 1] += w[cur + 3]
            w[f + 2] += w[cur + 4]
            w[f + 3] += w[cur + 5]
            w[cur] = start
            w[cur + 1] = w[cur + 2] = w[cur + 3] = w[cur + 4] = w[cur + 5] = 0
            w[cur + 6] = NO_RT
            self._seg.sweep(now_ns)  # a roll is at most twice a second
        return cur, at + (B0 if k & 1 else B1), start

    # -- per call ----------------------------------------------------------------------------

    def floor_ns(self) -> int:
        w = self._w
        return int(max(w[self._at + B0], w[self._at + B1]))

    def on_pass(self, now_ns: int) -> object:
        self._take()
        w = self._w
        try:
            cur, _, start = self._current(now_ns)
            w[cur + 1] += 1
            w[self._at + INFLIGHT] += 1
            w[self._mine] += 1
        finally:
            self._release()
        return (cur, start)

    def admit(self, now_ns: int, limit: float) -> object:
        """Count a pass if the window has passed fewer than `limit` (the inbound record has
        no flow rule of its own: the system rules decide before it)."""
        return self.on_pass(now_ns)

    def cancel(self, token: object, now_ns: int, family: str) -> None:
        self._take()
        w = self._w
        try:
            if isinstance(token, tuple):
                cur, start = token
                if w[cur] == start and w[cur + 1] > 0:
                    w[cur + 1] -= 1
            w[self._at + INFLIGHT] -= 1
            w[self._mine] -= 1
            self._block(now_ns, family)
        finally:
            self._release()

    def on_block(self, now_ns: int, family: str) -> None:
        self._take()
        try:
            self._block(now_ns, family)
        finally:
            self._release()

    def _block(self, now_ns: int, family: str) -> None:
        w = self._w
        cur, _, _ = self._current(now_ns)
        w[cur + 2] += 1
        w[self._at + BLOCKED + _FAMILY.get(family, 0)] += 1
        blocked = self.total_blocked
        blocked[family] = blocked.get(family, 0) + 1

    def on_complete(self, now_ns: int, rt_ns: int, error: bool) -> None:
        self._take()
        w = self._w
        try:
            at = self._at
            k = now_ns // BUCKET_NS
            cur = at + (B1 if k & 1 else B0)
            if w[cur] != k * BUCKET_NS:
                cur = self._current(now_ns)[0]
            w[cur + 3] += 1
            w[cur + 5] += rt_ns
            if rt_ns < w[cur + 6]:
                w[cur + 6] = rt_ns
            if error:
                w[cur + 4] += 1
            w[at + INFLIGHT] -= 1
            w[self._mine] -= 1
            s = now_ns // 1_000_000_000
            h = HISTORY_AT + (s % _HISTORY) * 3
            if w[h] != s + 1:  # stored +1 so that a zeroed segment holds no slice
                w[h] = s + 1
                w[h + 1] = 0
                w[h + 2] = NO_RT
            w[h + 1] += 1
            if rt_ns < w[h + 2]:
                w[h + 2] = rt_ns
        finally:
            self._release()

    # -- reading (no lock: reporting and protective ceilings) --------------------------------

    def _live(self, now_ns: int) -> list[int]:
        w = self._w
        first = (now_ns // BUCKET_NS - 1) * BUCKET_NS
        return [b for b in (self._at + B0, self._at + B1) if first <= w[b] <= now_ns]

    def passed(self, now_ns: int) -> int:
        w = self._w
        return int(sum(w[b + 1] for b in self._live(now_ns)))

    def totals(self) -> tuple[int, int, int, int]:
        w = self._w
        at = self._at
        f = at + FLUSHED
        live = (at + B0, at + B1)
        return (int(w[f] + sum(w[b + 1] for b in live)),
                int(w[f + 1] + sum(w[b + 3] for b in live)),
                int(w[f + 2] + sum(w[b + 4] for b in live)),
                int(w[f + 3] + sum(w[b + 5] for b in live)))

    def window(self, now_ns: int) -> tuple[int, int, int, int, int, int]:
        w = self._w
        live = self._live(now_ns)
        rt_min = min((w[b + 6] for b in live), default=NO_RT)
        return (int(sum(w[b + 1] for b in live)), int(sum(w[b + 2] for b in live)),
                int(sum(w[b + 3] for b in live)), int(sum(w[b + 4] for b in live)),
                int(sum(w[b + 5] for b in live)), 0 if rt_min == NO_RT else int(rt_min))

    def capacity(self, now_ns: int) -> float:
        """Max completed per second x min RT in seconds over the last ten seconds."""
        w = self._w
        s = now_ns // 1_000_000_000
        max_completed = 0
        min_rt = NO_RT
        for i in range(_HISTORY):
            h = HISTORY_AT + i * 3
            if w[h] and s - (w[h] - 1) < _HISTORY:
                max_completed = max(max_completed, int(w[h + 1]))
                min_rt = min(min_rt, int(w[h + 2]))
        if max_completed == 0 or min_rt == NO_RT:
            return float("inf")
        return max_completed * min_rt / 1e9

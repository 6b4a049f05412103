"""Statistics kept in an instance's shared segment: one set of counters for all its workers.

`SharedStats` implements the `ResourceStats` protocol over one record of the segment
(shared/segment.py); `SharedStore` hands them out and is chosen when the engine is built, so no
call ever asks which kind of store it has. Every per-call method takes the segment lock for a
few word reads and writes: flow admission and isolation are exact across processes the same way
they are across threads (count, then read, under one lock).

Record layout (words from the record's offset):

    0, 1   key (the resource name's digest)      2      in flight (all workers)
    4..10  bucket 0: start_ns, passed, blocked, completed, errors, rt_sum_ns, rt_min_ns
    11..17 bucket 1: the same                    18..21 totals of buckets that left the window
    22..27 blocked since start, per family       48..   in flight per worker slot

The window is two 500 ms buckets, as in stat/window.py; bucket `k` (k = now // 500 ms) lives in
slot `k % 2`. A call that finds its slot holding an older bucket rolls it (folding its counts
into the totals); a call whose clock read is older than the newest bucket (a stalled thread,
another process that rolled first) is counted in the newest. The worker's own in-flight word
is what a sweep takes back when the worker dies (`reclaim`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading

from instpy.runtime.chain import FAMILIES
from instpy.runtime.shared import segment as seg_mod
from instpy.runtime.shared.instance import instance_key
from instpy.runtime.shared.segment import H_OWNER, HISTORY_AT, Segment
from instpy.runtime.stat.store import InboundResourceStats, LocalStore, ResourceStats, StatsStore
from instpy.runtime.stat.window import BUCKET_NS, FREE_THREADED

LOG = logging.getLogger("instpy.governance")
_NO_RT = 1 << 62
INFLIGHT, B0, B1, FLUSHED, BLOCKED, PER_WORKER = 2, 4, 11, 18, 22, 48
_FAMILY = {name: i for i, name in enumerate(FAMILIES)}
_HISTORY = 10


def init_record(w: memoryview, at: int) -> None:
    """A new record: both buckets outside any window, no minimum RT yet."""
    for b in (B0, B1):
        w[at + b] = -4 * BUCKET_NS
        w[at + b + 6] = _NO_RT


def reclaim(w: memoryview, at: int, slot: int) -> None:
    """With the lock held: give back what the dead worker in `slot` held in flight."""
    held = w[at + PER_WORKER + slot]
    if held:
        w[at + INFLIGHT] -= held
        w[at + PER_WORKER + slot] = 0


def _key(name: str) -> bytes:
    return hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class SharedStats:
    """One resource's counters in the segment. `lock` is this process's: it serialises the
    checks whose state is per process, as LocalStats' does; the counters take the segment's."""

    __slots__ = ("_acquire", "_at", "_mine", "_owner", "_release", "_seg", "_w", "lock",
                 "total_blocked")

    def __init__(self, seg: Segment, at: int) -> None:
        self._seg = seg
        self._w = seg.words
        self._at = at
        self.total_blocked: dict[str, int] = {}  # this process's blocks (reporting)
        self._bind()
        seg.rebind.append(self._bind)

    def _bind(self) -> None:
        seg = self._seg
        self._acquire = seg.acquire
        self._release = seg.release
        self._owner = seg.worker + 1
        self._mine = self._at + PER_WORKER + seg.worker
        self.lock: threading.Lock | threading.RLock = (
            threading.RLock() if FREE_THREADED else threading.Lock())

    @property
    def inflight(self) -> int:
        return int(self._w[self._at + INFLIGHT])

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
            w[cur + 6] = _NO_RT
            self._seg.sweep(now_ns)  # a roll is at most twice a second per resource
        return cur, at + (B0 if k & 1 else B1), start

    # -- per call ----------------------------------------------------------------------------

    def floor_ns(self) -> int:
        w = self._w
        return int(max(w[self._at + B0], w[self._at + B1]))

    def on_pass(self, now_ns: int) -> object:
        if not self._acquire(False):
            self._seg.wait()
        w = self._w
        try:
            w[H_OWNER] = self._owner
            cur, _, start = self._current(now_ns)
            w[cur + 1] += 1
            w[self._at + INFLIGHT] += 1
            w[self._mine] += 1
        finally:
            self._release()
        return (cur, start)

    def admit(self, now_ns: int, limit: float) -> object:
        """Count a pass if the window (both buckets) has passed fewer than `limit`: a token for
        `cancel`, else the window's pass count seen (an int). A pass also counts in flight."""
        if not self._acquire(False):
            self._seg.wait()
        w = self._w
        try:
            w[H_OWNER] = self._owner
            at = self._at
            k = now_ns // BUCKET_NS
            if k & 1:
                cur, prev = at + B1, at + B0
            else:
                cur, prev = at + B0, at + B1
            start = k * BUCKET_NS
            if w[cur] != start or w[prev] > start:
                cur, prev, start = self._current(now_ns)
            n = w[cur + 1] + 1
            seen = n + w[prev + 1] if w[prev] == start - BUCKET_NS else n
            if seen > limit:
                return seen - 1
            w[cur + 1] = n
            w[at + INFLIGHT] += 1
            w[self._mine] += 1
        finally:
            self._release()
        return (cur, start)

    def cancel(self, token: object, now_ns: int, family: str) -> None:
        """Take back a pass counted by `admit`/`on_pass` and count a block instead."""
        if not self._acquire(False):
            self._seg.wait()
        w = self._w
        try:
            w[H_OWNER] = self._owner
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
        if not self._acquire(False):
            self._seg.wait()
        try:
            self._w[H_OWNER] = self._owner
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
        if not self._acquire(False):
            self._seg.wait()
        w = self._w
        try:
            w[H_OWNER] = self._owner
            self._complete(w, now_ns, rt_ns, error)
        finally:
            self._release()

    def _complete(self, w: memoryview, now_ns: int, rt_ns: int, error: bool) -> None:
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
        rt_min = min((w[b + 6] for b in live), default=_NO_RT)
        return (int(sum(w[b + 1] for b in live)), int(sum(w[b + 2] for b in live)),
                int(sum(w[b + 3] for b in live)), int(sum(w[b + 4] for b in live)),
                int(sum(w[b + 5] for b in live)), 0 if rt_min == _NO_RT else int(rt_min))


class SharedInboundStats(SharedStats):
    """All inbound traffic of the instance, plus BBR's ten one-second slices (in the segment's
    header: slice, completed, min RT per slice), for the system rules."""

    __slots__ = ()

    def on_complete(self, now_ns: int, rt_ns: int, error: bool) -> None:
        if not self._acquire(False):
            self._seg.wait()
        w = self._w
        try:
            w[H_OWNER] = self._owner
            self._complete(w, now_ns, rt_ns, error)
            s = now_ns // 1_000_000_000
            h = HISTORY_AT + (s % _HISTORY) * 3
            if w[h] != s + 1:  # stored +1 so that a zeroed segment holds no slice
                w[h] = s + 1
                w[h + 1] = 0
                w[h + 2] = _NO_RT
            w[h + 1] += 1
            if rt_ns < w[h + 2]:
                w[h + 2] = rt_ns
        finally:
            self._release()

    def capacity(self, now_ns: int) -> float:
        """Max completed per second x min RT in seconds over the last ten seconds."""
        w = self._w
        s = now_ns // 1_000_000_000
        max_completed = 0
        min_rt = _NO_RT
        for i in range(_HISTORY):
            h = HISTORY_AT + i * 3
            if w[h] and s - (w[h] - 1) < _HISTORY:
                max_completed = max(max_completed, int(w[h + 1]))
                min_rt = min(min_rt, int(w[h + 2]))
        if max_completed == 0 or min_rt == _NO_RT:
            return float("inf")
        return max_completed * min_rt / 1e9


class SharedStore:
    """Counters of the instance in its segment; `process_stats` (rules with `scope: process`)
    and resources past the segment's capacity get this process's own LocalStats."""

    def __init__(self, seg: Segment) -> None:
        self.segment = seg
        self._lock = threading.Lock()
        self._local = LocalStore()
        self._stats: dict[str, ResourceStats] = {}
        at = seg.record(_key("\0inbound"))
        if at is None:  # pragma: no cover - a fresh segment always has room
            raise RuntimeError("instpy: no room for the inbound record")
        self._inbound = SharedInboundStats(seg, at)
        self._full_logged = False

    def stats(self, resource: str) -> ResourceStats:
        found = self._stats.get(resource)
        if found is not None:
            return found
        with self._lock:
            found = self._stats.get(resource)
            if found is None:
                at = self.segment.record(_key(resource))
                if at is None:
                    if not self._full_logged:
                        self._full_logged = True
                        LOG.error(json.dumps({"event": "shared_segment_full",
                                              "segment": self.segment.path,
                                              "resource": resource}))
                    found = self._local.stats(resource)
                else:
                    found = SharedStats(self.segment, at)
                self._stats[resource] = found
        return found

    def process_stats(self, resource: str) -> ResourceStats:
        return self._local.stats(resource)

    def inbound(self) -> InboundResourceStats:
        return self._inbound

    def resources(self) -> list[tuple[str, ResourceStats]]:
        with self._lock:
            shared = dict(self._stats)
        shared.update(self._local.resources())
        return sorted(shared.items())


def instance_store(directory: str | None = None) -> StatsStore:
    """The store for this process: shared by the instance's workers when it has any (see
    shared/instance.py), else counters in this process. A segment that cannot be set up (no
    writable directory, say) is logged and governance stays per process."""
    key = instance_key()
    if key is None:
        return LocalStore()
    try:
        return SharedStore(seg_mod.segment_for(key, directory))
    except (OSError, RuntimeError, ValueError) as exc:
        LOG.error(json.dumps({"event": "shared_segment_failed", "instance": key,
                              "error": str(exc), "fallback": "per-process counters"}))
        return LocalStore()

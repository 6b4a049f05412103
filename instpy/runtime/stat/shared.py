"""Statistics kept in an instance's shared segment: one set of counters for all its workers.

`SharedStats` implements the `ResourceStats` protocol over one record of the segment
(shared/segment.py); `SharedStore` hands them out and is chosen when the engine is built, so no
call ever asks which kind of store it has. All inbound traffic has a record of its own
(shared/inbound.py).

What a call costs is what it writes, so each worker counts in a stripe of the record that only
it writes, with no lock; the segment lock is taken only where a decision must see every
worker's calls at once:

* passes, completions, errors, RT, blocks: cumulative words in the worker's stripe. Only this
  process writes them; its threads need no lock on builds with a GIL, where a thread switch
  happens only at a call or a backward jump and `w[i] += n` (subscript, add, store, all in C)
  runs whole. Free-threaded builds run every call under the resource's `lock` (plan.py).
* the window: at the first call of a 500 ms bucket the worker stores the cumulative words in
  the bucket's slot of its stripe (two slots, as stat/window.py keeps two buckets); a bucket's
  counts are the difference between consecutive snapshots. Readers sum the stripes.
* in flight: passes minus completions, summed over the stripes. Isolation's "count, then
  read" holds across processes because `admit` counts the pass with the segment lock held:
  of two racing admissions the later one to take the lock reads the other's pass.
* flow admission: the window's pass count for `qps` must be exact across workers, so it is
  also counted in the record's head, under the segment lock, in two words: the newest 500 ms
  bucket and the one before it, each packed as `bucket number << 32 | passes`. One read of
  the newest word tells a caller both that its bucket is still the newest and how many passed
  in it; the one before changes only when passes are given back (a refusal taken back, an
  unused lease: `ADM_GIVEN` counts those), so a count of it that a caller kept can only be
  too high (shared/path.py keeps it per bucket and needs one read and one write per call).

Record layout (words from the record's offset):

    0, 1   key (the resource name's digest)   3  kind (0: these stripes)
    4      the newest admission bucket: k << 32 | passes (k = now // 500 ms)
    5      the admission bucket before it, packed the same way (its passes are final but
           for passes given back)
    6      how many times passes were given back (a refusal taken back, an unused lease)
    16..19 totals of workers that left: passed, completed, errors, rt_sum_ns
    20     their blocks; 21..26 their blocks per family
    32..   one stripe of STRIPE_WORDS per worker slot:
           0 passed, 1 completed, 2 errors, 3 rt_sum_ns, 4 blocked (all cumulative),
           5..10 blocked per family, 12..18 and 19..25 two window slots: bucket start_ns,
           the cumulative words 0..4 at that start, min RT in the bucket

A worker that dies leaves its stripe to the next sweep (shared/segment.py), which folds it into
the leavers' totals and zeroes it: its in-flight calls are given back.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from operator import length_hint

from instpy.runtime.chain import FAMILIES
from instpy.runtime.config.rules_section import ResourceRules
from instpy.runtime.shared import segment as seg_mod
from instpy.runtime.shared.inbound import SharedInboundStats, init_inbound
from instpy.runtime.shared.instance import instance_key
from instpy.runtime.shared.record import SegmentRecord
from instpy.runtime.shared.segment import (
    H_HIGH,
    H_OWNER,
    RECORD_HEAD,
    STRIPE_WORDS,
    Segment,
)
from instpy.runtime.shared.state import StateTable
from instpy.runtime.stat.store import InboundResourceStats, LocalStore, ResourceStats, StatsStore
from instpy.runtime.stat.window import BUCKET_NS

LOG = logging.getLogger("instpy.governance")
NO_RT = 1 << 62
KIND, ADM, ADM_PREV, ADM_GIVEN, LEFT, LEFT_BLOCKED = 3, 4, 5, 6, 16, 20
PASSES = (1 << 32) - 1  # the passes of a packed admission word
# Limits at or above this are never reached in one bucket (2**31 calls in 500 ms), and a
# bucket's passes stay below 2**32, so they never carry into its number.
MAX_LIMIT = 1 << 31
# In a stripe: cumulative words, blocks per family, the two window slots (SLOT words each).
PASSED, COMPLETED, ERRORS, RT_SUM, BLOCKED, FAMILY = 0, 1, 2, 3, 4, 5
SLOT_A, SLOT_B, SLOT, RT_MIN = 12, 19, 7, 6
_FAMILY = {name: i for i, name in enumerate(FAMILIES)}
_INF = float("inf")
_ZERO_STRIPE = memoryview(bytes(STRIPE_WORDS * 8)).cast("q")
_NO_LEASE: tuple[int, Iterator[bool]] = (-(1 << 62), iter(()))


def init_record(w: memoryview, at: int) -> None:
    """A new record: admission buckets outside any window."""
    w[at + ADM] = w[at + ADM_PREV] = -4 << 32


def reclaim(w: memoryview, at: int, slot: int) -> None:
    """With the lock held: fold the stripe of the worker that left `slot` into the leavers'
    totals and zero it (its calls in flight end with it)."""
    s = at + RECORD_HEAD + slot * STRIPE_WORDS
    if not (w[s + PASSED] or w[s + BLOCKED] or w[s + SLOT_A] or w[s + SLOT_B]):
        return
    for i in range(4):
        w[at + LEFT + i] += w[s + i]
    for i in range(1 + len(FAMILIES)):
        w[at + LEFT_BLOCKED + i] += w[s + BLOCKED + i]
    w[s:s + STRIPE_WORDS] = _ZERO_STRIPE


def _key(name: str) -> bytes:
    return hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class SharedStats(SegmentRecord):
    """One resource's counters in the segment, as this worker writes and reads them.

    `lock` is this process's: it serialises the checks whose state is per process, as
    LocalStats' does. Cached per process (renewed after a fork by `_bind`): the offsets of
    this worker's stripe words, the end of its current window slot, and its lease: passes
    counted in the instance's admission bucket, not yet used: `_lease` is (the bucket's end,
    an iterator that `next` takes one pass from atomically), replaced as one reference (see
    shared/path.py)."""

    __slots__ = ("_completed", "_end", "_errors", "_high", "_in_c", "_in_p", "_lease",
                 "_passed", "_roll_lock", "_rt_min", "_rt_sum", "_stripe", "_token")

    def __init__(self, seg: Segment, at: int) -> None:
        self._high = -1
        self._token = (-1 << 40,)
        super().__init__(seg, at)

    def _bind(self) -> None:
        super()._bind()
        s = self._stripe = self._at + RECORD_HEAD + self._seg.worker * STRIPE_WORDS
        self._passed = s + PASSED
        self._completed = s + COMPLETED
        self._errors = s + ERRORS
        self._rt_sum = s + RT_SUM
        self._rt_min = s + SLOT_A + RT_MIN
        self._end = -(1 << 62)  # the first call takes a window slot
        self._roll_lock = threading.Lock()
        # A forked child starts without its parent's lease: those passes are the parent's.
        self._lease: tuple[int, Iterator[bool]] = _NO_LEASE

    # -- a lease of passes (shared/path.py) --------------------------------------------------

    def lease(self, passes: int, end_ns: int) -> None:
        """With the lock held: `passes` more passes, already counted in the admission
        bucket that ends at `end_ns`, for this process to use without the lock."""
        self._lease = (end_ns, itertools.repeat(True, passes))

    def give_back_lease(self, now_ns: int | None = None) -> None:
        """Count the passes of this process's lease that were not used as never passed: its
        bucket ended before `now_ns` (None: whatever its bucket, the plan that took it was
        replaced). Under the lock, so that no lease is taken meanwhile and lost."""
        end, lease = self._lease
        if (now_ns is not None and now_ns < end) or not length_hint(lease):
            return
        w = self._w
        if not self._acquire(False):
            self._seg.wait()
        try:
            w[H_OWNER] = self._owner
            end, lease = self._lease
            if now_ns is not None and now_ns < end:
                return  # another thread took a lease of the current bucket
            self._lease = _NO_LEASE
            left = len(list(lease))  # taken whole: no thread can still take one of them
            if left:
                self._take_back(end // BUCKET_NS - 1, left)
        finally:
            self._release()

    def _give_back(self, k: int, passes: int) -> None:
        """Take `passes` back from admission bucket `k` if it is still in the window."""
        if not self._acquire(False):
            self._seg.wait()
        try:
            self._w[H_OWNER] = self._owner
            self._take_back(k, passes)
        finally:
            self._release()

    def _take_back(self, k: int, passes: int) -> None:
        """`_give_back` with the lock held."""
        w = self._w
        for word in (self._at + ADM, self._at + ADM_PREV):
            v = w[word]
            if v >> 32 == k:
                w[word] = v - min(passes, v & PASSES)
                w[self._at + ADM_GIVEN] += 1
                break

    def _roll(self, now_ns: int) -> None:
        """The first call of a bucket: snapshot the cumulative words into its slot (and give
        back what is left of a lease of an earlier bucket)."""
        self.give_back_lease(now_ns)
        with self._roll_lock:
            if now_ns < self._end:
                return  # another thread rolled first
            w = self._w
            s = self._stripe
            k = now_ns // BUCKET_NS
            b = s + (SLOT_B if k & 1 else SLOT_A)
            w[b + 1:b + 6] = w[s:s + 5]
            w[b + RT_MIN] = NO_RT
            w[b] = k * BUCKET_NS
            self._rt_min = b + RT_MIN
            self._end = (k + 1) * BUCKET_NS
        # At most twice a second per resource, and at the first call after a quiet spell: a
        # dead worker's calls in flight are given back before this one is counted.
        self._seg.poll(now_ns)

    # -- per call ----------------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        """Calls in flight in every worker: passes minus completions over the stripes."""
        w = self._w
        high = w[H_HIGH]
        if high != self._high:
            first = self._at + RECORD_HEAD
            end = first + high * STRIPE_WORDS
            self._in_p = w[first + PASSED:end:STRIPE_WORDS]
            self._in_c = w[first + COMPLETED:end:STRIPE_WORDS]
            self._high = high
        return int(sum(self._in_p) - sum(self._in_c))

    def recount(self, now_ns: int) -> int:
        """`inflight` after a sweep, if one is due: what a call refused for being over a
        concurrency limit reads again (a dead worker's calls must not refuse it)."""
        self._seg.poll(now_ns)
        return self.inflight

    def floor_ns(self) -> int:
        return int(self._end - BUCKET_NS)

    def on_pass(self, now_ns: int) -> object:
        if now_ns >= self._end:
            self._roll(now_ns)
        self._w[self._passed] += 1
        return None

    def admit(self, now_ns: int, limit: float) -> object:
        """Count a pass if the instance's window has passed fewer than `limit`: a token for
        `cancel`, else the window's pass count seen (an int). With the segment lock held, so
        that isolation's read of `inflight` after it sees every earlier admission."""
        if now_ns >= self._end:
            self._roll(now_ns)
        w = self._w
        if not self._acquire(False):
            self._seg.wait()
        try:
            w[H_OWNER] = self._owner
            if limit == _INF:
                w[self._passed] += 1
                return None
            v, prev = self.admission(now_ns)
            seen = (v & PASSES) + prev
            if seen + 1 > limit:
                return int(seen)
            w[self._at + ADM] = v + 1
            w[self._passed] += 1
        finally:
            self._release()
        token = self._token
        if token[0] != v >> 32:
            token = self._token = (v >> 32,)
        return token

    def admission(self, now_ns: int) -> tuple[int, int]:
        """With the lock held: the newest admission bucket's word at or after `now_ns`
        (rolling it when `now_ns` is past it) and the passes of the bucket before it. A call
        whose clock read is older than the newest bucket (a stalled thread, another worker
        that rolled first) is counted in the newest."""
        w = self._w
        cur = self._at + ADM
        k = now_ns // BUCKET_NS
        v = w[cur]
        newest = v >> 32
        if k > newest:
            w[cur + 1] = v if newest == k - 1 else (k - 1) << 32
            v = w[cur] = k << 32
        else:
            k = newest
        p = w[cur + 1]
        return v, (p & PASSES if p >> 32 == k - 1 else 0)

    def cancel(self, token: object, now_ns: int, family: str) -> None:
        """Take back a pass counted by `admit`/`on_pass` and count a block instead."""
        if token.__class__ is tuple:
            self._give_back(token[0], 1)
        self._w[self._passed] -= 1
        self.on_block(now_ns, family)

    def on_block(self, now_ns: int, family: str) -> None:
        if now_ns >= self._end:
            self._roll(now_ns)
        w = self._w
        w[self._stripe + BLOCKED] += 1
        w[self._stripe + FAMILY + _FAMILY.get(family, 0)] += 1
        blocked = self.total_blocked
        blocked[family] = blocked.get(family, 0) + 1

    def on_complete(self, now_ns: int, rt_ns: int, error: bool) -> None:
        w = self._w
        w[self._completed] += 1
        w[self._rt_sum] += rt_ns
        if rt_ns < w[self._rt_min]:
            w[self._rt_min] = rt_ns
        if error:
            w[self._errors] += 1

    # -- reading: sums over the stripes (no lock; a due sweep runs first) --------------------

    def _stripes(self, now_ns: int) -> range:
        w = self._w
        self._seg.poll(now_ns)
        first = self._at + RECORD_HEAD
        return range(first, first + w[H_HIGH] * STRIPE_WORDS, STRIPE_WORDS)

    def totals(self) -> tuple[int, int, int, int]:
        w = self._w
        out = [int(w[self._at + LEFT + i]) for i in range(4)]
        for s in self._stripes(time.monotonic_ns()):
            for i in range(4):
                out[i] += w[s + i]
        return out[0], out[1], out[2], out[3]

    def _window(self, now_ns: int) -> list[int]:
        """passed, completed, errors, rt_sum, blocked, rt_min over the buckets of the window
        at `now_ns` (this one and the one before), summed over the workers."""
        w = self._w
        first = (now_ns // BUCKET_NS - 1) * BUCKET_NS
        out = [0, 0, 0, 0, 0, NO_RT]
        for s in self._stripes(now_ns):
            a, b = s + SLOT_A, s + SLOT_B
            if w[a] < w[b]:
                a, b = b, a  # a: the newest slot
            if not first <= w[a] <= now_ns:
                continue  # no call of this worker in the window
            for i in range(5):
                out[i] += w[s + i] - w[a + 1 + i]  # since the newest slot began
            rt_min = w[a + RT_MIN]
            if w[b] == w[a] - BUCKET_NS and w[b] >= first:
                for i in range(5):
                    out[i] += w[a + 1 + i] - w[b + 1 + i]
                rt_min = min(rt_min, w[b + RT_MIN])
            out[5] = min(out[5], rt_min)
        return out

    def passed(self, now_ns: int) -> int:
        return self._window(now_ns)[0]

    def window(self, now_ns: int) -> tuple[int, int, int, int, int, int]:
        passed, completed, errors, rt_sum, blocked, rt_min = self._window(now_ns)
        return (passed, blocked, completed, errors, rt_sum, 0 if rt_min == NO_RT else rt_min)

class SharedStore:
    """Counters of the instance in its segment; `process_stats` (rules with `scope: process`)
    and resources past the segment's capacity get this process's own LocalStats."""

    def __init__(self, seg: Segment) -> None:
        self.segment = seg
        self._lock = threading.Lock()
        self._local = LocalStore()
        self._stats: dict[str, ResourceStats] = {}
        at = seg.record(_key("\0inbound"), init_inbound)
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
                at = self.segment.record(_key(resource), init_record)
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

    def states(self, rules: Iterable[ResourceRules]) -> StateTable:
        """Rule state in the segment, shared by the workers; `scope: process` rules keep
        theirs in this process."""
        return StateTable(self.segment, (r.resource for r in rules if r.scope == "process"))


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

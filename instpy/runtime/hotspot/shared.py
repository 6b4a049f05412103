"""Hot-parameter state of the instance: one table of values for all the workers of a pre-fork
server, in records of the segment (shared/state.py), read and written under the segment lock.

The table holds `ENTRIES` values, set-associative: a value's digest picks a set of `WAYS`
entries; a new value takes a free entry of its set, else the least recently used one with no
call in flight (a value with calls in flight is never forgotten: its count must come back to
zero). Each entry: the value's digest, the token bucket (tokens, last use) and the calls in
flight. A value that finds no entry it may take is not limited (fail open) rather than
refused.

Per-value concurrency counts a call in `check` (the count and the comparison must be one step
for all workers); when a later check of the chain refuses the call, `on_pass` never confirms
it, and the next check of this resource in this process gives the count back: the plan runs a
call's checks and pass hooks in one section under the resource lock, so a reservation still
pending when a section starts belongs to a call that was refused. Each worker also notes what
it holds in its row of a ledger record, so a sweep gives back the counts of a worker that died.
"""

from __future__ import annotations

import hashlib

from instpy.runtime.entry import TrackedEntry
from instpy.runtime.events import StateChange
from instpy.runtime.hotspot.check import HotConcurrencyCheck, HotQpsCheck, refill
from instpy.runtime.hotspot.rule import HotParamRule
from instpy.runtime.shared.segment import H_SWEEP, MAX_WORKERS
from instpy.runtime.shared.state import FIELDS_AT, SharedState, State, StateTable
from instpy.runtime.stat.store import Lock, ResourceStats

WAYS = 8
ENTRIES = 256
SETS = ENTRIES // WAYS
DIGEST, TOKENS, LAST_NS, INFLIGHT, ENTRY = 0, 1, 2, 3, 4
TABLE_FIELDS = ENTRIES * ENTRY
LEDGER_KIND = 3
HELD = 16  # (entry + 1, calls) pairs per worker in the ledger
ROW = 2 * HELD
LEDGER_FIELDS = 1 + MAX_WORKERS * ROW  # field 0: the table record's word offset


def digest(key: str) -> int:
    """A value's 63-bit digest, never 0 (0 marks a free entry); the same in every process
    (str hashes are salted per interpreter), remembered for the values seen lately."""
    found = _digests.get(key)
    if found is None:
        raw = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        found = (int.from_bytes(raw, "little") >> 1) | 1
        if len(_digests) >= 4096:
            _digests.clear()
        _digests[key] = found
    return found


_digests: dict[str, int] = {}


def reclaim_ledger(w: memoryview, at: int, slot: int) -> None:
    """With the lock held: give back the per-value counts the dead worker in `slot` held."""
    first = at + FIELDS_AT
    table = w[first] + FIELDS_AT
    row = first + 1 + slot * ROW
    for p in range(row, row + ROW, 2):
        held = w[p + 1]
        if w[p] and held:
            inflight = table + (w[p] - 1) * ENTRY + INFLIGHT
            w[inflight] = max(0, w[inflight] - held)
        w[p] = w[p + 1] = 0


class _SharedTable:
    """Lookup in the table; every method runs with the segment lock held."""

    def __init__(self, table: SharedState) -> None:
        self.table = table

    def find(self, h: int, now_ns: int, create: bool) -> int:
        """The entry of digest `h`, taken (zeroed, last use now) when `create`; -1 if none."""
        ints = self.table.ints
        first = (h % SETS) * WAYS
        free = victim = -1
        oldest = 0
        for i in range(first, first + WAYS):
            e = i * ENTRY
            d = ints[e + DIGEST]
            if d == h:
                return i
            if d == 0:
                if free < 0:
                    free = i
            elif ints[e + INFLIGHT] == 0 and (victim < 0 or ints[e + LAST_NS] < oldest):
                victim, oldest = i, ints[e + LAST_NS]
        if not create:
            return -1
        taken = free if free >= 0 else victim
        if taken >= 0:
            e = taken * ENTRY
            ints[e + DIGEST] = h
            ints[e + LAST_NS] = now_ns
            ints[e + INFLIGHT] = 0
            self.table.floats[e + TOKENS] = -1.0  # a new value: its bucket is full
        return taken

    def lock(self) -> None:
        self.table.segment.lock()

    def release(self) -> None:
        self.table.segment.release()


class SharedHotQpsCheck(HotQpsCheck):
    """`HotQpsCheck` with one token bucket per value for the instance."""

    __slots__ = ("_table",)

    def __init__(self, rule: HotParamRule, table: SharedState) -> None:
        super().__init__(rule)
        self._table = _SharedTable(table)

    def take(self, key: str, now_ns: int, limit: float, capacity: float) -> bool:
        table = self._table
        table.lock()
        try:
            i = table.find(digest(key), now_ns, True)
            if i < 0:
                return True  # no entry to take: not limited (fail open)
            e = i * ENTRY
            ints, floats = table.table.ints, table.table.floats
            if floats[e + TOKENS] < 0.0:  # a new value
                floats[e + TOKENS] = capacity - 1.0
                return True
            tokens = refill(floats[e + TOKENS], now_ns - ints[e + LAST_NS], limit, capacity)
            ints[e + LAST_NS] = now_ns
            floats[e + TOKENS] = tokens - 1.0 if tokens >= 1.0 else tokens
            return tokens >= 1.0
        finally:
            table.release()


class SharedHotConcurrencyCheck(HotConcurrencyCheck):
    """`HotConcurrencyCheck` with one in-flight count per value for the instance."""

    __slots__ = ("_ledger", "_pending", "_table")

    def __init__(self, rule: HotParamRule, table: SharedState, ledger: SharedState) -> None:
        super().__init__(rule)
        self._table = _SharedTable(table)
        self._ledger = ledger
        self._pending: list[int] = []  # entries counted by `check`, not yet confirmed

    def _note(self, i: int, calls: int) -> None:
        """Add `calls` to this worker's ledger row for entry `i` (lock held)."""
        ints = self._ledger.ints
        row = 1 + self._table.table.segment.worker * ROW
        home = row + (i % HELD) * 2
        spare = -1
        for p in (home, *range(row, row + ROW, 2)):
            if ints[p] == i + 1:
                ints[p + 1] += calls
                if ints[p + 1] <= 0:
                    ints[p] = ints[p + 1] = 0
                return
            if spare < 0 and ints[p] == 0:
                spare = p
        if calls > 0 and spare >= 0:
            ints[spare] = i + 1
            ints[spare + 1] = calls
        # a full row: counted, not reclaimable if this worker dies (16 values held at once)

    def _give_back(self, i: int) -> None:
        e = i * ENTRY + INFLIGHT
        ints = self._table.table.ints
        if ints[e] > 0:
            ints[e] -= 1
        self._note(i, -1)

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        key = entry.hot_key
        pending = self._pending
        if key is None and not pending:
            return None
        table = self._table
        table.lock()
        try:
            for i in pending:  # counted for a call a later check refused
                self._give_back(i)
            pending.clear()
            if key is None:
                return None
            limit = self.items.get(key, self.default)
            i = table.find(digest(key), now_ns, limit > 0.0)
            if i < 0:
                if limit <= 0.0:
                    return key
                entry.hot_key = None  # no entry to take: not limited (fail open), not counted
                return None
            e = i * ENTRY
            ints = table.table.ints
            if ints[e + INFLIGHT] >= limit:
                seg = table.table.segment
                if now_ns < seg.words[H_SWEEP]:
                    return key
                seg.sweep(now_ns)  # full: first give back what dead workers held
                if ints[e + INFLIGHT] >= limit:
                    return key
            ints[e + INFLIGHT] += 1
            ints[e + LAST_NS] = now_ns
            self._note(i, 1)
            pending.append(i)
            return None
        finally:
            table.release()

    def on_pass(self, entry: TrackedEntry) -> None:
        self._pending.clear()  # the call runs: its count stays until `on_exit`

    def settle(self, lock: Lock) -> None:
        """Give back the counts of calls a later check refused, for a path that checks the
        value outside the resource's lock (shared/path.py `hot_path`): under `lock`, no
        section of the generic path is between its check and its pass hook."""
        lock.acquire()
        try:
            pending = self._pending
            if not pending:
                return
            table = self._table
            table.lock()
            try:
                for i in pending:
                    self._give_back(i)
                pending.clear()
            finally:
                table.release()
        finally:
            lock.release()

    def on_exit(self, entry: TrackedEntry, now_ns: int, rt_ns: int,
                error: bool) -> StateChange | None:
        key = entry.hot_key
        if key is None:
            return None
        table = self._table
        table.lock()
        try:
            i = table.find(digest(key), now_ns, False)
            if i >= 0:
                self._give_back(i)
        finally:
            table.release()
        return None


def new_shared(rule: HotParamRule, states: StateTable) -> HotQpsCheck | HotConcurrencyCheck:
    """The check of `rule` over the instance's state, or the per-process one where `states`
    gives no shared record (scope process, no segment, a full segment)."""
    table = states.state("hot_param", rule, rule.resource, TABLE_FIELDS)
    if not isinstance(table, SharedState):
        return HotQpsCheck(rule) if rule.mode == "qps" else HotConcurrencyCheck(rule)
    if rule.mode == "qps":
        return SharedHotQpsCheck(rule, table)

    def point_at_table(ledger: State) -> None:
        ledger.ints[0] = table.at

    ledger = states.state("hot_param_ledger", rule, rule.resource, LEDGER_FIELDS,
                          point_at_table, LEDGER_KIND)
    if not isinstance(ledger, SharedState):
        return HotConcurrencyCheck(rule)
    return SharedHotConcurrencyCheck(rule, table, ledger)

"""Circuit breaker: closed -> open -> half-open (probes) -> closed or open again.

Closed, every completed call lands in the breaker's own sliding window (ten buckets over
`window_ms`, with running sums so a completion costs O(1)). When the window holds at least
`min_requests` calls and the strategy's threshold is crossed, the breaker opens and blocks
every call for `recovery_ms`. The first call after that half-opens it and goes through as a
probe, as do the next ones up to `probes`; all probes succeeding closes it (with a fresh
window), the first failed or slow probe opens it again. Completions of calls admitted before
the breaker opened are ignored while it is not closed, as Sentinel does.
"""

from __future__ import annotations

from instpy.runtime.circuitbreaker.rule import BreakerRule
from instpy.runtime.entry import TrackedEntry
from instpy.runtime.events import StateChange
from instpy.runtime.stat.store import ResourceStats

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
STATE_VALUES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}
_BUCKETS = 10


class BreakerCheck:
    family = "circuit_breaker"
    __slots__ = ("_bad", "_last_slice", "_total", "bad_sum", "bucket_ns", "max_rt_ns",
                 "next_retry_ns", "probes_admitted", "probes_ok", "rule", "state", "total_sum")

    def __init__(self, rule: BreakerRule) -> None:
        self.rule = rule
        self.state = CLOSED
        self.bucket_ns = max(1, int(rule.window_ms * 1_000_000) // _BUCKETS)
        self.max_rt_ns = int(rule.max_rt_ms * 1_000_000)
        self.next_retry_ns = 0
        self.probes_admitted = 0
        self.probes_ok = 0
        self._reset_window(-1)

    def _reset_window(self, slice_: int) -> None:
        self._total = [0] * _BUCKETS
        self._bad = [0] * _BUCKETS
        self.total_sum = 0
        self.bad_sum = 0
        self._last_slice = slice_

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
        rule = self.rule
        bad = rt_ns > self.max_rt_ns if rule.strategy == "slow_ratio" else error
        state = self.state
        if state is not CLOSED:
            # A call entered while closed took the lock-free path: an Entry without `probe`.
            if state is HALF_OPEN and getattr(entry, "probe", False):
                return self._probe_done(now_ns, bad, rt_ns)
            return None
        slice_ = now_ns // self.bucket_ns
        if slice_ != self._last_slice:
            self._roll(slice_)
        i = slice_ % _BUCKETS
        self._total[i] += 1
        self.total_sum += 1
        if bad:
            self._bad[i] += 1
            self.bad_sum += 1
        if self.total_sum < rule.min_requests:
            return None
        if rule.strategy == "error_count":
            if self.bad_sum >= rule.threshold:
                return self._open(now_ns, CLOSED, self.bad_sum)
            return None
        ratio = self.bad_sum / self.total_sum
        if ratio > rule.threshold or (ratio == 1.0 and rule.threshold == 1.0):
            return self._open(now_ns, CLOSED, ratio)
        return None

    def _roll(self, slice_: int) -> None:
        last = self._last_slice
        if last < 0 or slice_ - last >= _BUCKETS or slice_ < last:
            self._reset_window(slice_)
            return
        for s in range(last + 1, slice_ + 1):  # expire every bucket the clock moved past
            i = s % _BUCKETS
            self.total_sum -= self._total[i]
            self.bad_sum -= self._bad[i]
            self._total[i] = 0
            self._bad[i] = 0
        self._last_slice = slice_

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

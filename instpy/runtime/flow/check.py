"""Flow checks, one class per behavior.

Reject is counted by the statistics themselves (`ResourceStats.admit`, lock-free); the plan
reads `RejectCheck.qps` and never calls its `check` on the GIL build. Warm-up and throttling
keep state across calls and run with the resource lock held.
"""

from __future__ import annotations

from instpy.runtime.entry import TrackedEntry
from instpy.runtime.flow.rule import FlowRule
from instpy.runtime.stat.store import ResourceStats

_SECOND_NS = 1_000_000_000


class RejectCheck:
    """Block when the last second already passed `qps` requests."""

    family = "flow"
    __slots__ = ("qps", "rule")

    def __init__(self, rule: FlowRule) -> None:
        self.rule = rule
        self.qps = rule.qps

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        passed = stats.passed(now_ns)  # counts this call already
        if passed > self.qps:
            return passed - 1
        return None


class WarmUpCheck:
    """Sentinel's warm-up (Guava SmoothWarmingUp): a cold resource starts at qps/cold_factor.

    A token store fills while traffic is below the warm rate and drains as requests pass;
    the more tokens stored (the colder the resource), the lower the allowed rate, sliding
    linearly from qps/cold_factor at `max_tokens` to qps at `warning_tokens`.
    """

    family = "flow"
    __slots__ = ("_cur", "_last_fill_s", "_prev", "_sec", "cold", "count", "max_tokens", "rule",
                 "slope", "stored", "warning")

    def __init__(self, rule: FlowRule) -> None:
        self.rule = rule
        self.count = rule.qps
        self.cold = rule.cold_factor
        period_s = rule.warm_up_period_ms / 1000.0
        self.warning = period_s * self.count / (self.cold - 1.0)
        self.max_tokens = self.warning + 2.0 * period_s * self.count / (1.0 + self.cold)
        self.slope = (self.cold - 1.0) / self.count / (self.max_tokens - self.warning)
        self.stored = 0.0
        self._last_fill_s = -1
        self._sec = -1
        self._cur = 0
        self._prev = 0

    def allowed_qps(self) -> float:
        if self.stored >= self.warning:
            above = self.stored - self.warning
            return 1.0 / (above * self.slope + 1.0 / self.count)
        return self.count

    def _sync(self, sec: int) -> None:
        if sec == self._sec:
            return
        self._prev = self._cur if sec == self._sec + 1 else 0
        self._cur = 0
        self._sec = sec
        old = self.stored
        if self._last_fill_s < 0:
            new = self.max_tokens  # a resource never seen is cold
        else:
            refill = (sec - self._last_fill_s) * self.count
            if old < self.warning or (old > self.warning and self._prev < self.count / self.cold):
                new = old + refill
            else:
                new = old
        self.stored = max(0.0, min(new, self.max_tokens) - self._prev)
        self._last_fill_s = sec

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        self._sync(now_ns // _SECOND_NS)
        passed = stats.passed(now_ns)  # counts this call already (`admit` runs first)
        if passed <= self.allowed_qps():
            self._cur += 1
            return None
        return passed - 1


class ThrottlingCheck:
    """Uniform pacing: one request every 1/qps s; wait for a slot at most max_queueing."""

    family = "flow"
    __slots__ = ("interval_ns", "last_ns", "max_wait_ns", "rule")

    def __init__(self, rule: FlowRule) -> None:
        self.rule = rule
        self.interval_ns = int(_SECOND_NS / rule.qps)
        self.max_wait_ns = int(rule.max_queueing_ms * 1_000_000)
        self.last_ns: int | None = None

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        last = self.last_ns
        expected = now_ns if last is None else last + self.interval_ns
        if expected <= now_ns:
            self.last_ns = now_ns
            return None
        wait = expected - now_ns
        if wait > self.max_wait_ns:
            return wait / 1_000_000  # the queueing time (ms) it would have needed
        self.last_ns = expected
        entry.wait_ns = wait
        return None


FlowCheck = RejectCheck | WarmUpCheck | ThrottlingCheck
CHECK_TYPES = (RejectCheck, WarmUpCheck, ThrottlingCheck)


def new_check(rule: FlowRule) -> FlowCheck:
    if rule.behavior == "warm_up":
        return WarmUpCheck(rule)
    if rule.behavior == "throttling":
        return ThrottlingCheck(rule)
    return RejectCheck(rule)

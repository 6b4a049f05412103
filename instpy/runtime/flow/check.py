"""Flow checks, one class per behavior.

Reject is counted by the statistics themselves (`ResourceStats.admit`, lock-free); the plan
reads `RejectCheck.qps` and never calls its `check` on the GIL build. Warm-up and throttling
keep state across calls and run with the resource lock held; that state is a `State`
(shared/state.py): the instance's, shared by a pre-fork server's workers under the segment
lock, or this process's own (`scope: process`, or no segment).
"""

from __future__ import annotations

from instpy.runtime.entry import TrackedEntry
from instpy.runtime.flow.rule import FlowRule
from instpy.runtime.shared.state import LocalState, State, StateTable
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
    linearly from qps/cold_factor at `max_tokens` to qps at `warning_tokens`. State: the
    stored tokens, the second they were last filled, the current second and the passes
    counted in it and in the one before (`STORED`... in `state`).
    """

    family = "flow"
    __slots__ = ("cold", "count", "max_tokens", "rule", "slope", "state", "warning")
    STORED, LAST_FILL_S, SEC, CUR, PREV = range(5)

    def __init__(self, rule: FlowRule, state: State | None = None) -> None:
        self.rule = rule
        self.count = rule.qps
        self.cold = rule.cold_factor
        period_s = rule.warm_up_period_ms / 1000.0
        self.warning = period_s * self.count / (self.cold - 1.0)
        self.max_tokens = self.warning + 2.0 * period_s * self.count / (1.0 + self.cold)
        self.slope = (self.cold - 1.0) / self.count / (self.max_tokens - self.warning)
        self.state = state if state is not None else LocalState(5, self.init)

    @classmethod
    def init(cls, state: State) -> None:
        state.floats[cls.STORED] = 0.0
        state.ints[cls.LAST_FILL_S] = -1
        state.ints[cls.SEC] = -1
        state.ints[cls.CUR] = 0
        state.ints[cls.PREV] = 0

    @property
    def stored(self) -> float:
        return self.state.floats[self.STORED]

    def allowed_qps(self) -> float:
        stored = self.state.floats[self.STORED]
        if stored >= self.warning:
            above = stored - self.warning
            return 1.0 / (above * self.slope + 1.0 / self.count)
        return self.count

    def _sync(self, sec: int) -> None:
        ints = self.state.ints
        if sec == ints[self.SEC]:
            return
        prev = ints[self.CUR] if sec == ints[self.SEC] + 1 else 0
        ints[self.PREV] = prev
        ints[self.CUR] = 0
        ints[self.SEC] = sec
        floats = self.state.floats
        old = floats[self.STORED]
        last_fill = ints[self.LAST_FILL_S]
        if last_fill < 0:
            new = self.max_tokens  # a resource never seen is cold
        else:
            refill = (sec - last_fill) * self.count
            if old < self.warning or (old > self.warning and prev < self.count / self.cold):
                new = old + refill
            else:
                new = old
        floats[self.STORED] = max(0.0, min(new, self.max_tokens) - prev)
        ints[self.LAST_FILL_S] = sec

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        # Counts this call already (`admit` ran first); read before the guard, which may be
        # the segment lock (a read of shared statistics may take it to sweep).
        passed = stats.passed(now_ns)
        with self.state.guard():
            self._sync(now_ns // _SECOND_NS)
            if passed <= self.allowed_qps():
                self.state.ints[self.CUR] += 1
                return None
        return passed - 1


class ThrottlingCheck:
    """Uniform pacing: one request every 1/qps s; wait for a slot at most max_queueing. State:
    when the last admitted request runs (0: none yet), in `state`."""

    family = "flow"
    __slots__ = ("interval_ns", "max_wait_ns", "rule", "state")
    LAST_NS = 0

    def __init__(self, rule: FlowRule, state: State | None = None) -> None:
        self.rule = rule
        self.interval_ns = int(_SECOND_NS / rule.qps)
        self.max_wait_ns = int(rule.max_queueing_ms * 1_000_000)
        self.state = state if state is not None else LocalState(1)

    @property
    def last_ns(self) -> int | None:
        return self.state.ints[self.LAST_NS] or None

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        ints = self.state.ints
        with self.state.guard():
            last = ints[self.LAST_NS]
            expected = now_ns if last == 0 else last + self.interval_ns
            if expected <= now_ns:
                ints[self.LAST_NS] = now_ns
                return None
            wait = expected - now_ns
            if wait > self.max_wait_ns:
                return wait / 1_000_000  # the queueing time (ms) it would have needed
            ints[self.LAST_NS] = expected
        entry.wait_ns = wait
        return None


FlowCheck = RejectCheck | WarmUpCheck | ThrottlingCheck
CHECK_TYPES = (RejectCheck, WarmUpCheck, ThrottlingCheck)


def new_check(rule: FlowRule, states: StateTable | None = None) -> FlowCheck:
    """The check of `rule`; its state from `states` (the instance's where shared), else this
    process's."""
    if rule.behavior == "warm_up":
        return WarmUpCheck(rule, None if states is None else states.state(
            "flow", rule, rule.resource, 5, WarmUpCheck.init))
    if rule.behavior == "throttling":
        return ThrottlingCheck(rule, None if states is None else states.state(
            "flow", rule, rule.resource, 1))
    return RejectCheck(rule)

"""Hot-parameter checks: per-value token buckets or per-value in-flight counts, LRU-bounded.

The parameter value is looked up by the engine before the resource lock is taken (the
`lookup` callable belongs to the hook and may be slow) and arrives as `entry.hot_key`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from instpy.runtime.entry import TrackedEntry
from instpy.runtime.events import StateChange
from instpy.runtime.hotspot.rule import HotParamRule
from instpy.runtime.stat.store import ResourceStats

Lookup = Callable[[str, str], object]


def key_of(value: object) -> str | None:
    """Parameter values are compared as text, the way `items` keys are written."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (list, tuple)):  # a repeated query parameter: its first value
        return key_of(value[0]) if value else None
    return str(value)


class _HotBase:
    family = "hot_param"
    __slots__ = ("default", "items", "max_tracked", "name", "rule", "source", "tracked")

    def __init__(self, rule: HotParamRule) -> None:
        self.rule = rule
        self.source = rule.source
        self.name = rule.name
        self.default = rule.threshold
        self.items = dict(rule.items)
        self.max_tracked = rule.max_tracked
        self.tracked: OrderedDict[str, list[float]] = OrderedDict()

    def key(self, lookup: Lookup | None) -> str | None:
        if lookup is None:
            return None
        return key_of(lookup(self.source, self.name))


class HotQpsCheck(_HotBase):
    """Token bucket per value: refills `limit` per second, holds at most `limit + burst`."""

    __slots__ = ("burst",)

    def __init__(self, rule: HotParamRule) -> None:
        super().__init__(rule)
        self.burst = rule.burst

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        key = entry.hot_key
        if key is None:
            return None
        limit = self.items.get(key, self.default)
        if limit <= 0.0:
            return key
        return None if self.take(key, now_ns, limit, limit + self.burst) else key

    def take(self, key: str, now_ns: int, limit: float, capacity: float) -> bool:
        """Take a token from `key`'s bucket (a value not seen yet starts full)."""
        tracked = self.tracked
        state = tracked.get(key)
        if state is None:
            if len(tracked) >= self.max_tracked:
                tracked.popitem(last=False)
            tracked[key] = [capacity - 1.0, float(now_ns)]
            return True
        tracked.move_to_end(key)
        tokens = refill(state[0], now_ns - state[1], limit, capacity)
        state[1] = float(now_ns)
        state[0] = tokens - 1.0 if tokens >= 1.0 else tokens
        return tokens >= 1.0


def refill(tokens: float, elapsed_ns: float, limit: float, capacity: float) -> float:
    """A bucket's tokens after `elapsed_ns` at `limit` per second, at most `capacity`."""
    tokens += elapsed_ns * limit / 1e9
    return capacity if tokens > capacity else tokens


class HotConcurrencyCheck(_HotBase):
    """At most `limit` calls in flight per value; values with nothing in flight are dropped."""

    __slots__ = ()

    def check(self, stats: ResourceStats, now_ns: int, entry: TrackedEntry) -> object | None:
        key = entry.hot_key
        if key is None:
            return None
        state = self.tracked.get(key)
        if state is not None and state[0] >= self.items.get(key, self.default):
            return key
        if state is None and self.items.get(key, self.default) <= 0.0:
            return key
        return None

    def on_pass(self, entry: TrackedEntry) -> None:
        key = entry.hot_key
        if key is None:
            return
        tracked = self.tracked
        state = tracked.get(key)
        if state is None:
            if len(tracked) >= self.max_tracked:
                tracked.popitem(last=False)
            tracked[key] = [1.0, 0.0]
        else:
            tracked.move_to_end(key)
            state[0] += 1.0

    def on_exit(self, entry: TrackedEntry, now_ns: int, rt_ns: int,
                error: bool) -> StateChange | None:
        key = entry.hot_key
        if key is None:
            return None
        state = self.tracked.get(key)
        if state is not None:
            if state[0] <= 1.0:
                del self.tracked[key]
            else:
                state[0] -= 1.0
        return None


HotCheck = HotQpsCheck | HotConcurrencyCheck
CHECK_TYPES = (HotQpsCheck, HotConcurrencyCheck)


def new_check(rule: HotParamRule) -> HotCheck:
    return HotQpsCheck(rule) if rule.mode == "qps" else HotConcurrencyCheck(rule)

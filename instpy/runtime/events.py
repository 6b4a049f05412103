"""Block and state-change events: structured JSON log lines, rate-limited, and callbacks.

A blocked request never writes a line by itself: the first block of a (resource, family) pair
is logged, then at most one line per interval carrying how many blocks it stands for.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

LOG = logging.getLogger("instpy.governance")
DEFAULT_INTERVAL_NS = 10_000_000_000


@dataclass(frozen=True)
class StateChange:
    """A circuit breaker moved from `previous` to `state` (closed / open / half_open)."""

    resource: str
    rule: object
    previous: str
    state: str
    value: object  # what tripped it: the ratio or count seen, or the probe outcome


def to_json(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.compare}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


class EventLog:
    """Rate-limited structured logging of blocks and breaker transitions."""

    def __init__(self, interval_ns: int = DEFAULT_INTERVAL_NS,
                 logger: logging.Logger = LOG) -> None:
        self.interval_ns = interval_ns
        self.logger = logger
        self._lock = threading.Lock()
        self._next: dict[tuple[str, str], list[int]] = {}  # key -> [next_ns, suppressed]
        self.listeners: list[Callable[[StateChange], None]] = []

    def _admit(self, key: tuple[str, str], now_ns: int) -> int | None:
        """None to stay quiet, else how many events were suppressed since the last line."""
        with self._lock:
            slot = self._next.get(key)
            if slot is None:
                if len(self._next) > 10_000:
                    self._next.clear()  # bounded: forgetting only makes the next line early
                self._next[key] = [now_ns + self.interval_ns, 0]
                return 0
            if now_ns < slot[0]:
                slot[1] += 1
                return None
            suppressed = slot[1]
            slot[0] = now_ns + self.interval_ns
            slot[1] = 0
            return suppressed

    def blocked(self, now_ns: int, resource: str, family: str, rule: object,
                value: object) -> None:
        suppressed = self._admit((resource, family), now_ns)
        if suppressed is None:
            return
        self.logger.warning(json.dumps({
            "event": "blocked", "resource": resource, "family": family,
            "rule": to_json(rule), "value": to_json(value),
            "suppressed_since_last": suppressed,
        }, sort_keys=True))

    def failure(self, now_ns: int, resource: str, what: str, exc: BaseException) -> None:
        """A governance-side failure that fails open (logged, rate-limited)."""
        suppressed = self._admit((resource, "failure:" + what), now_ns)
        if suppressed is None:
            return
        self.logger.error(json.dumps({
            "event": "failure", "resource": resource, "what": what,
            "error": f"{type(exc).__name__}: {exc}", "suppressed_since_last": suppressed,
        }, sort_keys=True))

    def state_changed(self, now_ns: int, change: StateChange) -> None:
        for listener in list(self.listeners):
            try:
                listener(change)
            except Exception:  # a listener's bug must not break the governed call
                self.logger.exception("instpy: state-change listener failed")
        suppressed = self._admit((change.resource, "state:" + change.state), now_ns)
        if suppressed is None:
            return
        self.logger.warning(json.dumps({
            "event": "circuit_breaker_state", "resource": change.resource,
            "from": change.previous, "to": change.state, "value": to_json(change.value),
            "rule": to_json(change.rule), "suppressed_since_last": suppressed,
        }, sort_keys=True))

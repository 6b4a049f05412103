"""Per-lane counters: requests each lane carried in, and outbound calls routed or fallen back.

Counters are `itertools.count` objects (one atomic C call per increment under the GIL); the
exposition reads them back without consuming them.
"""

from __future__ import annotations

import itertools
import threading


class LaneStats:
    """Counters keyed by (metric, lane, service); created on first use, never removed
    (lanes and services are a small, configured set)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str, str], itertools.count[int]] = {}

    def count(self, metric: str, lane: str, service: str = "") -> None:
        key = (metric, lane, service)
        counter = self._counters.get(key)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(key, itertools.count(1))
        next(counter)

    def value(self, metric: str, lane: str, service: str = "") -> int:
        counter = self._counters.get((metric, lane, service))
        return 0 if counter is None else _peek(counter)

    def exposition(self) -> str:
        """Prometheus text for every lane counter."""
        help_text = {
            "instpy_lane_requests_total": "Inbound requests carried by each lane.",
            "instpy_lane_routed_total": "Outbound calls sent to an instance of the request's lane.",
            "instpy_lane_fallback_total": "Outbound calls of a lane sent to base instances "
                                          "(the lane has no instance, or it refused).",
        }
        with self._lock:
            keys = sorted(self._counters)
        lines: list[str] = []
        for metric, text in help_text.items():
            rows = [k for k in keys if k[0] == metric]
            if not rows:
                continue
            lines += [f"# HELP {metric} {text}", f"# TYPE {metric} counter"]
            for _, lane, service in rows:
                labels = f'lane="{lane}"' + (f',service="{service}"' if service else "")
                lines.append(f"{metric}{{{labels}}} {self.value(metric, lane, service)}")
        return "\n".join(lines) + ("\n" if lines else "")


def _peek(counter: itertools.count[int]) -> int:
    # repr is "count(N)": the next value; the count so far is N - 1 (counters start at 1).
    return int(repr(counter)[6:-1]) - 1


LANE_STATS = LaneStats()

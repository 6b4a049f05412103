"""Render the engine's statistics in the Prometheus text format (version 0.0.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from instpy.runtime.chain import FAMILIES
from instpy.runtime.lanes.stats import LANE_STATS

if TYPE_CHECKING:
    from instpy.runtime.engine import Engine

_METRICS = (
    ("instpy_requests_passed_total", "counter", "Calls that passed governance."),
    ("instpy_requests_blocked_total", "counter", "Calls blocked, by rule family."),
    ("instpy_requests_completed_total", "counter", "Calls that finished (exit recorded)."),
    ("instpy_requests_errors_total", "counter", "Calls that finished with an error."),
    ("instpy_request_rt_seconds_total", "counter", "Sum of response times of finished calls."),
    ("instpy_requests_in_flight", "gauge", "Calls currently in flight."),
    ("instpy_window_pass_qps", "gauge", "Calls passed in the last second."),
    ("instpy_window_block_qps", "gauge", "Calls blocked in the last second."),
    ("instpy_window_rt_min_seconds", "gauge", "Minimum response time in the last second."),
    ("instpy_circuit_breaker_state", "gauge",
     "Circuit breaker state: 0 closed, 1 open, 2 half-open."),
)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(engine: Engine) -> str:
    now = engine.now_ns()
    rows: dict[str, list[str]] = {name: [] for name, _, _ in _METRICS}
    for resource, stats in engine.statistics().resources():
        label = f'resource="{escape(resource)}"'
        stats.lock.acquire()
        try:
            passed, blocked, _, _, _, rt_min = stats.window(now)
            passed_total, completed, errors, rt_ns = stats.totals()
            totals = (passed_total, dict(stats.total_blocked), completed, errors, rt_ns,
                      stats.inflight)
        finally:
            stats.lock.release()
        rows["instpy_requests_passed_total"].append(f"{{{label}}} {totals[0]}")
        for family in FAMILIES:
            count = totals[1].get(family, 0)
            rows["instpy_requests_blocked_total"].append(
                f'{{{label},family="{family}"}} {count}')
        rows["instpy_requests_completed_total"].append(f"{{{label}}} {totals[2]}")
        rows["instpy_requests_errors_total"].append(f"{{{label}}} {totals[3]}")
        rows["instpy_request_rt_seconds_total"].append(f"{{{label}}} {totals[4] / 1e9:.9f}")
        rows["instpy_requests_in_flight"].append(f"{{{label}}} {totals[5]}")
        rows["instpy_window_pass_qps"].append(f"{{{label}}} {passed}")
        rows["instpy_window_block_qps"].append(f"{{{label}}} {blocked}")
        rows["instpy_window_rt_min_seconds"].append(f"{{{label}}} {rt_min / 1e9:.9f}")
    for resource, state in sorted(engine.breaker_states().items()):
        rows["instpy_circuit_breaker_state"].append(f'{{resource="{escape(resource)}"}} {state}')
    lines: list[str] = []
    for name, kind, help_text in _METRICS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(name + row for row in rows[name])
    return "\n".join(lines) + "\n" + LANE_STATS.exposition()

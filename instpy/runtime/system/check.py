"""System adaptive check over all inbound traffic (run before the per-resource chain).

It reads the inbound aggregate without its lock: these are protective ceilings over the whole
process, and a momentarily stale read costs at most a request or two, as in Sentinel.
"""

from __future__ import annotations

from collections.abc import Callable

from instpy.runtime.stat.store import InboundResourceStats
from instpy.runtime.system.rule import SystemRule


class SystemCheck:
    family = "system"
    __slots__ = ("bbr", "cpu", "cpu_threshold", "inbound", "max_avg_rt_ns", "max_concurrency",
                 "max_qps", "rule")

    def __init__(self, rule: SystemRule, inbound: InboundResourceStats,
                 cpu: Callable[[], float]) -> None:
        self.rule = rule
        self.inbound = inbound
        self.cpu = cpu
        self.cpu_threshold = rule.cpu_threshold
        self.bbr = rule.bbr
        self.max_qps = rule.max_qps
        self.max_concurrency = rule.max_concurrency
        self.max_avg_rt_ns = (None if rule.max_avg_rt_ms is None
                              else rule.max_avg_rt_ms * 1_000_000)

    def check(self, now_ns: int) -> object | None:
        """None to pass, else (metric, observed value)."""
        inbound = self.inbound
        inflight = inbound.inflight
        if self.max_concurrency is not None and inflight >= self.max_concurrency:
            return ("concurrency", inflight)
        if self.max_qps is not None:
            passed = inbound.passed(now_ns)
            if passed + 1 > self.max_qps:
                return ("qps", passed)
        if self.max_avg_rt_ns is not None:
            _, _, completed, _, rt_sum, _ = inbound.window(now_ns)
            if completed and rt_sum / completed > self.max_avg_rt_ns:
                return ("avg_rt_ms", rt_sum / completed / 1e6)
        if self.cpu_threshold is not None:
            usage = self.cpu()
            if usage > self.cpu_threshold:
                if not self.bbr:
                    return ("cpu", usage)
                # BBR: admit while in flight stays within what the instance has shown it can
                # complete (max completed QPS x min RT); a single request is always admitted.
                if inflight > 1 and inflight > inbound.capacity(now_ns):
                    return ("cpu_bbr", usage)
        return None

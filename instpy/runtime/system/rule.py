"""System adaptive protection: guard the whole instance's inbound traffic."""

from __future__ import annotations

from dataclasses import dataclass

from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node

KEYS = ("cpu", "qps", "concurrency", "avg_rt")
CPU_KEYS = ("threshold", "bbr", "sample_interval")


@dataclass(frozen=True)
class SystemRule:
    """Ceilings over all inbound traffic of this process (outbound and internal never count).

    * CPU: above `cpu_threshold` (0-1), block new inbound requests; with `bbr`, block only
      while in-flight requests exceed max completed QPS x min RT (the BBR estimate of what the
      instance can absorb), so a busy but healthy instance keeps serving.
    * `max_qps`, `max_concurrency`, `max_avg_rt_ms`: plain inbound ceilings.
    """

    cpu_threshold: float | None = None
    bbr: bool = True
    cpu_sample_interval_ms: float = 1000.0
    max_qps: float | None = None
    max_concurrency: int | None = None
    max_avg_rt_ms: float | None = None

    @property
    def empty(self) -> bool:
        return (self.cpu_threshold is None and self.max_qps is None
                and self.max_concurrency is None and self.max_avg_rt_ms is None)


def parse(node: Node) -> SystemRule:
    fields = v.mapping(node, KEYS, "system")
    cpu_threshold: float | None = None
    bbr = True
    interval = 1000.0
    if "cpu" in fields:
        cpu = v.mapping(fields["cpu"], CPU_KEYS, "system.cpu")
        cpu_threshold = v.ratio(v.require(cpu, "threshold", fields["cpu"], "system.cpu"))
        bbr = v.boolean(cpu["bbr"]) if "bbr" in cpu else True
        if "sample_interval" in cpu:
            interval = v.duration_ms(cpu["sample_interval"], minimum_ms=100.0)
    max_qps = v.number(fields["qps"], minimum=0.0, maximum=1e9) if "qps" in fields else None
    max_conc = (v.integer(fields["concurrency"], minimum=1, maximum=10_000_000)
                if "concurrency" in fields else None)
    max_rt = v.duration_ms(fields["avg_rt"], allow_zero=False) if "avg_rt" in fields else None
    return SystemRule(cpu_threshold, bbr, interval, max_qps, max_conc, max_rt)

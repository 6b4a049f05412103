"""Circuit breaking: slow-call ratio, error ratio and error count, with half-open probes."""

from instpy.runtime.circuitbreaker.rule import BreakerRule

__all__ = ["BreakerRule"]

"""Flow control: QPS thresholds with reject, warm-up and throttling behaviors."""

from instpy.runtime.flow.rule import FlowRule

__all__ = ["FlowRule"]

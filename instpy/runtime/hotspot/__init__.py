"""Hot-parameter limits: per-value QPS or concurrency for one request parameter."""

from instpy.runtime.hotspot.rule import HotParamRule

__all__ = ["HotParamRule"]

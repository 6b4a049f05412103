"""System adaptive protection: CPU with BBR admission, inbound QPS/concurrency/RT ceilings."""

from instpy.runtime.system.rule import SystemRule

__all__ = ["SystemRule"]

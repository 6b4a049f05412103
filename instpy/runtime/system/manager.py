"""Builds the system check for a validated `system:` section, outside any lock."""

from __future__ import annotations

from collections.abc import Callable

from instpy.runtime.stat.store import InboundResourceStats
from instpy.runtime.system.check import SystemCheck
from instpy.runtime.system.rule import SystemRule


def build(rule: SystemRule, inbound: InboundResourceStats,
          cpu: Callable[[], float]) -> SystemCheck | None:
    return None if rule.empty else SystemCheck(rule, inbound, cpu)

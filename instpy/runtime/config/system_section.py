"""`system:` — adaptive protection of the whole instance's inbound traffic."""

from __future__ import annotations

from instpy.runtime.config.section import Section
from instpy.runtime.system.rule import SystemRule, parse

SECTION: Section[SystemRule] = Section(
    "system", parse, SystemRule(), "CPU (with BBR) and inbound qps/concurrency/avg_rt ceilings")

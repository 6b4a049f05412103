"""governance.yaml as a whole: named top-level sections, each with one validator.

The whole document is validated before anything is built; the first problem is reported as a
ConfigError with file, line, field and a fix, and nothing of the document is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from instpy.runtime.config import (
    lanes_section,
    metrics_section,
    rules_section,
    services_section,
    system_section,
)
from instpy.runtime.config.metrics_section import MetricsSettings
from instpy.runtime.config.nodes import parse_yaml
from instpy.runtime.config.rules_section import ResourceRules
from instpy.runtime.config.section import Section
from instpy.runtime.errors import ConfigError
from instpy.runtime.lanes.rule import LaneTable, ServiceTable
from instpy.runtime.system.rule import SystemRule

T = TypeVar("T")

# Every top-level section, in documentation order. A new section is one entry here.
SECTIONS: tuple[Section[Any], ...] = (
    rules_section.SECTION,
    system_section.SECTION,
    metrics_section.SECTION,
    lanes_section.SECTION,
    services_section.SECTION,
)


@dataclass(frozen=True)
class GovernanceConfig:
    """A validated document: each section's parsed value (defaults for absent sections)."""

    values: Mapping[str, object] = field(default_factory=dict)
    source: str = "<defaults>"

    def get(self, section: Section[T]) -> T:
        return cast(T, self.values.get(section.name, section.default))

    @property
    def rules(self) -> tuple[ResourceRules, ...]:
        return self.get(rules_section.SECTION)

    @property
    def system(self) -> SystemRule:
        return self.get(system_section.SECTION)

    @property
    def metrics(self) -> MetricsSettings:
        return self.get(metrics_section.SECTION)

    @property
    def lanes(self) -> LaneTable:
        return self.get(lanes_section.SECTION)

    @property
    def services(self) -> ServiceTable:
        return self.get(services_section.SECTION)


def parse_config(text: str, file: str = "governance.yaml") -> GovernanceConfig:
    """Validate a whole document; raise ConfigError on the first problem."""
    root = parse_yaml(text, file)
    if root is None:
        return GovernanceConfig(source=file)
    if not isinstance(root.value, dict):
        raise ConfigError(file, root.line, "<document>", "the document must be a mapping of "
                          "sections", f"start with one of: {_names()}")
    by_name = {s.name: s for s in SECTIONS}
    values: dict[str, object] = {}
    for key, node in root.value.items():
        section = by_name.get(key)
        if section is None:
            raise node.key_error(f"unknown section {key!r}", f"use one of: {_names()}")
        values[key] = section.parse(node) if node.value is not None else section.default
    return GovernanceConfig(values, file)


def _names() -> str:
    return ", ".join(s.name for s in SECTIONS)

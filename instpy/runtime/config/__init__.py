"""governance.yaml: parsing with line numbers, one validator per top-level section."""

from instpy.runtime.config.document import SECTIONS, GovernanceConfig, parse_config

__all__ = ["SECTIONS", "GovernanceConfig", "parse_config"]

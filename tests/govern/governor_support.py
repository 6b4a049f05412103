"""What the governor probes share: helpers the probe code defines, and running one probe.

A governor probe (tests/govern/test_*_governor.py) drives an app of its own in a process of its
own on a governed tree; its code ends by printing one JSON object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service_support import probe

# Defined in every probe: the engine's totals of a resource, and the class governing a target.
HELPERS = """
from instpy.runtime import injected
from instpy.runtime.governance import engine

def totals(resource):
    passed, completed, errors, _ = engine().statistics().stats(resource).totals()
    return [passed, completed, errors]

def governor(fingerprint):
    (target,) = injected.targets(fingerprint)
    return type(target.governor).__name__
"""


def run_probe(tree: Path, key: str, tmp_path: Path, rules: str, code: str) -> dict[str, Any]:
    """`code` (after HELPERS) on `tree` with governance.yaml `rules`; the JSON it printed."""
    governance = tmp_path / "governance.yaml"
    governance.write_text(rules)
    out, _ = probe(HELPERS + code, tree, key, governance)
    assert isinstance(out, dict), out
    return out

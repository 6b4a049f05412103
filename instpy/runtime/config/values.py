"""Typed readers for configuration values: each checks one node and explains a bad value.

Numbers reject booleans (YAML `yes` is not 1), NaN and infinities (a NaN compares false with
every bound, so it would slip through range checks and silently disable a rule).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection

from instpy.runtime.config.nodes import Node

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def mapping(node: Node, allowed: Collection[str], what: str) -> dict[str, Node]:
    """The node as a mapping whose keys are all in `allowed`."""
    if not isinstance(node.value, dict):
        raise node.error(f"{what} must be a mapping, got {_kind(node.value)}",
                         f"write it as `key: value` lines; valid keys: {_keys(allowed)}")
    for key, child in node.value.items():
        if key not in allowed:
            raise child.key_error(f"unknown key {key!r} in {what}",
                                  f"use one of: {_keys(allowed)}")
    return dict(node.value)


def sequence(node: Node, what: str) -> list[Node]:
    if not isinstance(node.value, list):
        raise node.error(f"{what} must be a list, got {_kind(node.value)}",
                         "write each item on its own line starting with `- `")
    return list(node.value)


def require(fields: dict[str, Node], key: str, parent: Node, what: str) -> Node:
    if key not in fields:
        raise parent.error(f"{what} needs `{key}`", f"add `{key}: ...` to it")
    return fields[key]


def number(node: Node, *, minimum: float | None = None, maximum: float | None = None,
           exclusive_minimum: bool = False) -> float:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise node.error(f"expected a finite number, got {value!r}", "write a plain number like 10")
    _bounds(node, float(value), minimum, maximum, exclusive_minimum)
    return float(value)


def integer(node: Node, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int):
        raise node.error(f"expected a whole number, got {value!r}", "write an integer like 10")
    _bounds(node, float(value), minimum, maximum, False)
    return value


def ratio(node: Node) -> float:
    """A ratio between 0 and 1 inclusive."""
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise node.error(f"expected a ratio between 0 and 1, got {value!r}",
                         "write a fraction such as 0.5 (for 50%)")
    return float(value)


def duration_ms(node: Node, *, minimum_ms: float = 0.0, allow_zero: bool = True) -> float:
    """A duration written with a unit (`500ms`, `10s`, `1m`, `1h`), in milliseconds."""
    value = node.value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise node.error(f"expected a duration with a unit, got {value!r}",
                         "write it like 500ms, 10s or 1m (a bare number has no unit)")
    ms = float(match.group(1)) * _UNIT_MS[match.group(2)]
    if not math.isfinite(ms) or ms > 86_400_000.0:
        raise node.error(f"duration {value!r} is longer than a day", "use a shorter duration")
    if ms < minimum_ms or (not allow_zero and ms == 0.0):
        low = f"{minimum_ms:g}ms" if minimum_ms else "zero"
        raise node.error(f"duration {value!r} is too short", f"use more than {low}")
    return ms


def string(node: Node, *, non_empty: bool = True) -> str:
    value = node.value
    if not isinstance(value, str) or (non_empty and not value.strip()):
        raise node.error(f"expected a non-empty string, got {value!r}",
                         "write text, quoted if it contains `:` or `#`")
    return value


def boolean(node: Node) -> bool:
    if not isinstance(node.value, bool):
        raise node.error(f"expected true or false, got {node.value!r}", "write true or false")
    return node.value


def choice(node: Node, options: Collection[str]) -> str:
    value = node.value
    if not isinstance(value, str) or value not in options:
        raise node.error(f"expected one of {_keys(options)}, got {value!r}",
                         f"use one of: {_keys(options)}")
    return value


def _bounds(node: Node, value: float, minimum: float | None, maximum: float | None,
            exclusive_minimum: bool) -> None:
    if minimum is not None and (value < minimum or (exclusive_minimum and value == minimum)):
        relation = "greater than" if exclusive_minimum else "at least"
        raise node.error(f"{value:g} is too small", f"use a value {relation} {minimum:g}")
    if maximum is not None and value > maximum:
        raise node.error(f"{value:g} is too large", f"use a value of at most {maximum:g}")


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _keys(keys: Collection[str]) -> str:
    return ", ".join(sorted(keys))

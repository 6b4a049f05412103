"""A small JSON Schema (2020-12 subset) checker, enough for governance.schema.json.

The test environment has no jsonschema package; this covers exactly the keywords the
published schema uses, and fails loudly on any other so the two cannot drift silently.
"""

from __future__ import annotations

import re
from typing import Any

_KNOWN = {"$schema", "$id", "title", "description", "$defs", "type", "properties",
          "additionalProperties", "required", "enum", "minimum", "maximum", "exclusiveMinimum",
          "pattern", "items", "oneOf", "anyOf", "$ref", "minLength", "minProperties"}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def valid(schema: dict[str, Any], value: object, root: dict[str, Any] | None = None) -> bool:
    root = root if root is not None else schema
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"minischema does not support {unknown}")
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        if not valid(target, value, root):
            return False
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(t, value) for t in types):
            return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return False
        if value != value:  # NaN satisfies no numeric schema in practice
            return False
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return False
        if len(value) < schema.get("minLength", 0):
            return False
    if isinstance(value, list) and "items" in schema \
            and not all(valid(schema["items"], v, root) for v in value):
        return False
    if isinstance(value, dict):
        if len(value) < schema.get("minProperties", 0):
            return False
        if any(k not in value for k in schema.get("required", [])):
            return False
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                if not valid(props[k], v, root):
                    return False
            elif extra is False or (isinstance(extra, dict) and not valid(extra, v, root)):
                return False
    if "oneOf" in schema and sum(valid(s, value, root) for s in schema["oneOf"]) != 1:
        return False
    return not ("anyOf" in schema and not any(valid(s, value, root) for s in schema["anyOf"]))


def _is(kind: str, value: object) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])

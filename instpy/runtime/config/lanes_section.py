"""`lanes:` — which requests enter which lane (full-link gray release)."""

from __future__ import annotations

import re

from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node
from instpy.runtime.config.section import Section
from instpy.runtime.lanes.rule import OPERATORS, SOURCES, Condition, Lane, LaneTable

LANE_KEYS = ("name", "tag", "match")
MATCH_KEYS = ("all", "any")
_TAG = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?\Z")


def parse(node: Node) -> LaneTable:
    lanes: list[Lane] = []
    names: dict[str, int] = {}
    for item in v.sequence(node, "lanes"):
        lane = _lane(item)
        if lane.name in names:
            raise item.error(f"lane {lane.name!r} is already defined at line {names[lane.name]}",
                             "give every lane its own name")
        names[lane.name] = item.line
        lanes.append(lane)
    return LaneTable(tuple(lanes))


def _lane(node: Node) -> Lane:
    fields = v.mapping(node, LANE_KEYS, "a lane")
    name = v.string(v.require(fields, "name", node, "a lane"))
    tag_node = v.require(fields, "tag", node, "a lane")
    tag = v.string(tag_node)
    if _TAG.match(tag) is None:
        raise tag_node.error(f"tag {tag!r} is not a label value",
                             "use letters, digits, '.', '_' and '-' (the alicloud.service.tag "
                             "label of the lane's instances), e.g. gray")
    if tag == "base":
        raise tag_node.error("'base' is the untagged version, not a lane",
                             "name the lane's tag after its instances' label, e.g. gray")
    match_node = v.require(fields, "match", node, "a lane")
    match = v.mapping(match_node, MATCH_KEYS, "a lane's match")
    if len(match) != 1:
        raise match_node.error("match needs exactly one of `all` or `any`",
                               "write match: {all: [...]} (every condition) or {any: [...]}")
    (mode, conditions_node), = match.items()
    conditions = tuple(_condition(c) for c in v.sequence(conditions_node, f"match.{mode}"))
    if not conditions:
        raise conditions_node.error(f"match.{mode} is empty", "add at least one condition")
    return Lane(name, tag, conditions, mode == "all")


def _condition(node: Node) -> Condition:
    fields = v.mapping(node, (*SOURCES, *OPERATORS), "a condition")
    sources = [s for s in SOURCES if s in fields]
    operators = [o for o in OPERATORS if o in fields]
    if len(sources) != 1 or len(operators) != 1:
        raise node.error("a condition names one value and one test",
                         "write e.g. {header: x-user-uuid, equals: \"123456789\"}; values: "
                         f"{', '.join(SOURCES)}; tests: {', '.join(OPERATORS)}")
    source, operator = sources[0], operators[0]
    name = v.string(fields[source])
    if source == "header":
        name = name.lower()
    value_node = fields[operator]
    if operator == "in":
        items = v.sequence(value_node, "in")
        return Condition(source, name, operator, tuple(_text(i) for i in items))
    if operator == "percentage":
        return Condition(source, name, operator,
                         v.number(value_node, minimum=0.0, maximum=100.0))
    text = _text(value_node)
    if operator == "regex":
        try:
            pattern = re.compile(text)
        except re.error as exc:
            raise value_node.error(f"regex {text!r} does not compile: {exc}",
                                   "fix the regular expression (Python syntax)") from None
        return Condition(source, name, operator, text, pattern)
    return Condition(source, name, operator, text)


def _text(node: Node) -> str:
    """Scalars as text: `equals: 123456789` and `equals: "123456789"` mean the same."""
    if isinstance(node.value, (dict, list)) or node.value is None:
        raise node.error(f"expected a value, got {node.value!r}", "write a string or number")
    return node.value if isinstance(node.value, str) else str(node.value)


SECTION: Section[LaneTable] = Section(
    "lanes", parse, LaneTable(), "lanes: which requests carry which tag (gray release)")

"""Lanes and services as validated, precomputed tables (built once per rule swap).

    lanes:
      - name: gray
        tag: gray
        match: {all: [{header: x-user-uuid, equals: "123456789"}]}
    services:
      service-c: {base: ["127.0.0.1:8103"], gray: ["127.0.0.1:8113"]}

A condition reads one value of the request (`header`, `query` or `cookie`) and tests it with one
operator: `equals`, `in` (a list), `prefix`, `regex` (full match) or `percentage` (0-100: a stable
hash of the value picks that share of values, so one user always lands in the same lane).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SOURCES = ("header", "query", "cookie")
OPERATORS = ("equals", "in", "prefix", "regex", "percentage")

# lookup(source, name) -> the request's value, or None when it has none.
Lookup = Callable[[str, str], object]


@dataclass(frozen=True)
class Condition:
    source: str  # header | query | cookie
    name: str
    operator: str  # equals | in | prefix | regex | percentage
    value: str | tuple[str, ...] | float
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def test(self, lookup: Lookup) -> bool:
        raw = lookup(self.source, self.name)
        if raw is None:
            return False
        text = str(raw)
        op = self.operator
        if op == "equals":
            return text == self.value
        if op == "in":
            return text in self.value  # type: ignore[operator]
        if op == "prefix":
            return text.startswith(self.value)  # type: ignore[arg-type]
        if op == "regex":
            return self.pattern is not None and self.pattern.fullmatch(text) is not None
        # percentage: a stable hash, not random, so a user's requests stay in one lane
        return zlib.crc32(text.encode()) % 10_000 < float(self.value) * 100  # type: ignore[arg-type]


@dataclass(frozen=True)
class Lane:
    name: str
    tag: str
    conditions: tuple[Condition, ...]
    require_all: bool  # all: every condition; any: at least one

    def matches(self, lookup: Lookup) -> bool:
        if self.require_all:
            return all(c.test(lookup) for c in self.conditions)
        return any(c.test(lookup) for c in self.conditions)


@dataclass(frozen=True)
class Service:
    """A destination service's instances by tag; `base` serves untagged requests and fallbacks."""

    name: str
    instances: Mapping[str, tuple[str, ...]]  # tag -> host:port ("base" for the base version)

    @property
    def base(self) -> tuple[str, ...]:
        return self.instances.get("base", ())


@dataclass(frozen=True)
class LaneTable:
    lanes: tuple[Lane, ...] = ()

    def tag_for(self, lookup: Lookup) -> str | None:
        """The tag of the first lane the request matches, else None (the base version)."""
        for lane in self.lanes:
            if lane.matches(lookup):
                return lane.tag
        return None

    def lane_name(self, tag: str) -> str:
        for lane in self.lanes:
            if lane.tag == tag:
                return lane.name
        return tag


@dataclass(frozen=True)
class ServiceTable:
    services: Mapping[str, Service] = field(default_factory=dict)
    # host:port of every lane (non-base) instance -> its service, to recognise a routed call
    lane_instances: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, services: Mapping[str, Service]) -> ServiceTable:
        lane_instances = {
            address: s.name
            for s in services.values()
            for tag, addresses in s.instances.items() if tag != "base"
            for address in addresses
        }
        return cls(dict(services), lane_instances)

"""Lanes and services: parsing with precise errors, matching, tag propagation, routing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from instpy.runtime.config.document import parse_config
from instpy.runtime.errors import ConfigError
from instpy.runtime.lanes import context
from instpy.runtime.lanes.router import base_url_for, route_url
from instpy.runtime.lanes.stats import LaneStats

DOC = """\
lanes:
  - name: gray
    tag: gray
    match: {all: [{header: X-User-UUID, equals: 123456789}]}
  - name: canary
    tag: canary
    match:
      any:
        - {query: uid, in: ["u1", "u2"]}
        - {cookie: beta, prefix: "yes"}
        - {header: x-team, regex: "team-[0-9]+"}
        - {header: x-user, percentage: 100}
services:
  service-b: {base: ["127.0.0.1:8102"]}
  service-c: {base: ["127.0.0.1:8103", "127.0.0.1:8104"], gray: ["127.0.0.1:8113"]}
"""


def lookup_of(**values: str) -> Callable[[str, str], object]:
    def lookup(source: str, name: str) -> object:
        return values.get(f"{source}:{name}")

    return lookup


def test_lanes_match_by_every_operator() -> None:
    table = parse_config(DOC).lanes
    assert table.tag_for(lookup_of(**{"header:x-user-uuid": "123456789"})) == "gray"
    assert table.tag_for(lookup_of(**{"header:x-user-uuid": "1"})) is None
    assert table.tag_for(lookup_of(**{"query:uid": "u2"})) == "canary"
    assert table.tag_for(lookup_of(**{"cookie:beta": "yes-please"})) == "canary"
    assert table.tag_for(lookup_of(**{"header:x-team": "team-42"})) == "canary"
    assert table.tag_for(lookup_of(**{"header:x-team": "team-42x"})) is None
    assert table.tag_for(lookup_of(**{"header:x-user": "anyone"})) == "canary"
    assert table.lane_name("canary") == "canary"


def test_percentage_is_stable_and_proportional() -> None:
    doc = "lanes:\n  - {name: p, tag: p, match: {all: [{header: u, percentage: 30}]}}\n"
    table = parse_config(doc).lanes
    picks = [table.tag_for(lookup_of(**{"header:u": f"user-{i}"})) for i in range(2000)]
    share = sum(p == "p" for p in picks) / len(picks)
    assert 0.25 < share < 0.35
    again = [table.tag_for(lookup_of(**{"header:u": f"user-{i}"})) for i in range(2000)]
    assert picks == again


@pytest.mark.parametrize(
    ("doc", "line", "field", "words"),
    [
        ("lanes:\n  - {name: g, tag: gray, match: {all: [{header: x, like: y}]}}\n", 2,
         "lanes", "unknown key"),
        ("lanes:\n  - name: g\n    tag: base\n    match: {all: [{header: x, equals: y}]}\n", 3,
         "tag", "untagged"),
        ("lanes:\n  - name: g\n    tag: gray\n    match: {all: [{header: x, regex: '('}]}\n", 4,
         "regex", "does not compile"),
        ("services:\n  b: {base: [\"localhost\"]}\n", 2, "base", "host:port"),
    ],
)
def test_bad_lanes_and_services_are_rejected_with_file_line_field(
    doc: str, line: int, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, "governance.yaml")
    err = info.value
    assert err.file == "governance.yaml" and err.line == line
    assert field in err.field or field in str(err)
    assert words in str(err)


def test_routing_prefers_the_lane_and_falls_back_to_base() -> None:
    services = parse_config(DOC).services
    assert route_url("http://service-c/greet1c?x=1", "gray", services) == \
        "http://127.0.0.1:8113/greet1c?x=1"
    bases = {route_url("http://service-c/greet1c", None, services) for _ in range(4)}
    assert bases == {"http://127.0.0.1:8103/greet1c", "http://127.0.0.1:8104/greet1c"}
    # no gray instance of B: a gray request goes to base, and keeps its tag for later hops
    assert route_url("http://service-b/greet1b", "gray", services) == \
        "http://127.0.0.1:8102/greet1b"
    assert route_url("http://elsewhere:81/x", "gray", services) == "http://elsewhere:81/x"
    # a refused lane instance: retry on base; a base instance has no fallback
    assert base_url_for("http://127.0.0.1:8113/greet1c", services, "gray") in {
        "http://127.0.0.1:8103/greet1c", "http://127.0.0.1:8104/greet1c"}
    assert base_url_for("http://127.0.0.1:8103/greet1c", services, "gray") is None


def test_tag_travels_as_x_mse_tag_and_baggage() -> None:
    headers = dict(context.headers_for("gray"))
    assert headers == {"x-mse-tag": "gray", "baggage": "x-mse-tag=gray"}
    assert context.tag_from_headers({"x-mse-tag": "gray"}.get) == "gray"
    assert context.tag_from_headers({"baggage": "a=1, x-mse-tag=gray;p=1"}.get) == "gray"
    assert context.tag_from_headers({"baggage": "a=1"}.get) is None
    assert context.headers_for(None) == []


def test_lane_counters_render_as_prometheus() -> None:
    stats = LaneStats()
    stats.count("instpy_lane_requests_total", "gray")
    stats.count("instpy_lane_requests_total", "gray")
    stats.count("instpy_lane_fallback_total", "gray", "service-c")
    text = stats.exposition()
    assert 'instpy_lane_requests_total{lane="gray"} 2' in text
    assert 'instpy_lane_fallback_total{lane="gray",service="service-c"} 1' in text
    assert stats.value("instpy_lane_routed_total", "gray") == 0

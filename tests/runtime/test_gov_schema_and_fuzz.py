"""The JSON Schema agrees with the validator; fuzzed files never crash or loosen rules."""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import pytest
import yaml
from gov_minischema import valid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_gov_config import ISSUE_EXAMPLE

from instpy.runtime.config.document import parse_config
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.errors import ConfigError

SCHEMA: dict[str, Any] = json.loads(
    resources.files("instpy.runtime").joinpath("governance.schema.json").read_text())

EXAMPLES = [
    (ISSUE_EXAMPLE, True),
    ("", True),
    ("rules:\n  - resource: a\n    flow: {qps: 5, behavior: warm_up, warm_up_period: 30s, "
     "cold_factor: 4}\n", True),
    ("rules:\n  - resource: a\n    flow: {qps: 5, behavior: throttling, max_queueing: 1s}\n",
     True),
    ("rules:\n  - resource: a\n    hot_param: {from: header, name: x, concurrency: 2}\n", True),
    ("rules:\n  - resource: a\n    degrade: {value: {ok: false}}\n", True),
    ("system: {qps: 100, concurrency: 50, avg_rt: 200ms}\nmetrics: {port: 9464}\n", True),
    ("rules:\n  - resource: a\n    flow: {qps: -1}\n", False),
    ("rules:\n  - resource: a\n    flow: {qps: 1, burst: 2}\n", False),
    ("rules:\n  - resource: a\n", False),
    ("rules:\n  - resource: a\n    flow: {qps: 1}\n    fallback: {status: 200, value: 1}\n",
     False),
    ("rules:\n  - resource: a\n    circuit_breaker: {strategy: error_ratio, threshold: 0.5, "
     "window: 10}\n", False),
    ("rules:\n  - resource: a\n    hot_param: {from: query, name: x, qps: 1, "
     "concurrency: 1}\n", False),
    ("system:\n  cpu: {threshold: 1.5}\n", False),
    ("metrics: {port: 0}\n", False),
    ("routes: []\n", False),
    ("lanes: []\n", True),
    ("lanes:\n  - {name: g, tag: gray, match: {all: [{header: x-u, equals: '1'}]}}\n", True),
    ("lanes:\n  - {name: g, tag: gray, match: {any: [{query: u, in: [a, b]}, "
     "{cookie: c, percentage: 10}]}}\n", True),
    ("lanes:\n  - {name: g, tag: gray, match: {all: [{header: x, like: y}]}}\n", False),
    ("lanes:\n  - {name: g, tag: gray}\n", False),
    ("services:\n  b: {base: ['127.0.0.1:8102'], gray: ['127.0.0.1:8112']}\n", True),
    ("services:\n  b: {base: [8102]}\n", False),
]


def accepted(text: str) -> bool:
    try:
        parse_config(text, "g.yaml")
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_schema_and_validator_agree_on_examples(text: str, expected: bool) -> None:
    assert accepted(text) is expected
    assert valid(SCHEMA, yaml.safe_load(text)) is expected


# -- fuzzing -------------------------------------------------------------------------------

KEYS = ["resource", "flow", "concurrency", "hot_param", "circuit_breaker", "fallback",
        "degrade", "qps", "behavior", "warm_up_period", "cold_factor", "max_queueing", "max",
        "from", "name", "burst", "items", "max_tracked", "strategy", "threshold", "max_rt",
        "min_requests", "window", "recovery", "probes", "status", "body", "content_type",
        "headers", "redirect", "value", "raise", "message", "cpu", "bbr", "rules", "system",
        "metrics", "port", "all_resources", "avg_rt", "junk"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**10),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["10s", "500ms", "1m", "0s", "-1s", "1e9", "reject", "warm_up",
                     "throttling", "error_ratio", "slow_ratio", "error_count", "query",
                     "header", "builtins:ValueError", "x:y", "GET /a", "", "nan"]),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=25,
)
DOCS = st.fixed_dictionaries({}, optional={
    "rules": st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5).map(
        lambda d: {"resource": "r", **d}), max_size=3),
    "system": VALUES,
    "metrics": VALUES,
})


def _finite_limits(engine: Engine) -> None:
    for rules in engine.config.rules:
        for rule in (rules.flow, rules.isolation, rules.hot_param, rules.circuit_breaker):
            if rule is None:
                continue
            for value in vars(rule).values():
                if isinstance(value, float):
                    assert math.isfinite(value) and value >= 0.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS)
def test_fuzzed_documents_never_crash_or_loosen(doc: dict[str, Any]) -> None:
    good = "rules:\n  - resource: r\n    flow: {qps: 0}\n"
    eng = Engine(parse_config(good, "g.yaml"), cpu=lambda: 0.0)
    before = eng.config
    text = yaml.safe_dump(doc, sort_keys=False)
    ok = eng.apply_text(text, "fuzz.yaml")
    if not ok:
        assert eng.config is before
        assert isinstance(eng.entry("r"), Blocked)  # the good rule is still in force
    else:
        _finite_limits(eng)
        assert valid(SCHEMA, doc), text  # the schema never rejects what the runtime accepts
    res = eng.entry("r", "inbound", lambda s, n: "v")
    if isinstance(res, Entry):
        res.exit(error=True)
    eng.metrics_text()
    eng.close()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_text_never_crashes(data: st.DataObject) -> None:
    text = ISSUE_EXAMPLE
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        chunk = data.draw(st.sampled_from([":", "-", " ", "\n", "{", "}", "[", "'", '"', "&a",
                                           "*a", "!!python/object:os.system", "0", "x"]))
        if op == "delete":
            text = text[:pos] + text[pos + 3:]
        elif op == "insert":
            text = text[:pos] + chunk + text[pos:]
        else:
            text = text[:pos] + chunk + text[pos + len(chunk):]
    eng = Engine(cpu=lambda: 0.0)
    before = eng.config
    if not eng.apply_text(text, "mutated.yaml"):
        assert eng.config is before
    eng.close()

"""governance.yaml validation: the issue's shape, and errors with file:line:field and a fix."""

from __future__ import annotations

import pytest

from instpy.runtime.config.document import SECTIONS, parse_config
from instpy.runtime.errors import ConfigError
from instpy.runtime.fallback import HttpFallback, MethodFallback

ISSUE_EXAMPLE = """\
rules:
  - resource: "GET /greet1a"
    flow: {qps: 1}
    fallback: {status: 429, body: "too many requests to /greet1a", content_type: text/plain}
  - resource: "POST /greet2a"
    concurrency: {max: 4}
  - resource: "GET /search"
    hot_param: {from: query, name: uid, qps: 5, burst: 2, items: {"vip-1": 100}}
  - resource: "shop.orders:OrderService.create"
    circuit_breaker: {strategy: error_ratio, threshold: 0.5, min_requests: 10, window: 10s, \
recovery: 5s}
    fallback: {raise: "shop.errors:Unavailable"}
  - resource: "GET /legacy"
    degrade: {redirect: "https://example.com/new"}
system:
  cpu: {threshold: 0.8, bbr: true}
"""


def test_issue_example_parses() -> None:
    config = parse_config(ISSUE_EXAMPLE, "governance.yaml")
    by_name = {r.resource: r for r in config.rules}
    assert by_name["GET /greet1a"].flow is not None and by_name["GET /greet1a"].flow.qps == 1
    assert isinstance(by_name["GET /greet1a"].fallback, HttpFallback)
    assert by_name["POST /greet2a"].isolation is not None
    hot = by_name["GET /search"].hot_param
    assert hot is not None and hot.items == (("vip-1", 100.0),) and hot.burst == 2
    breaker = by_name["shop.orders:OrderService.create"].circuit_breaker
    assert breaker is not None and breaker.window_ms == 10_000 and breaker.recovery_ms == 5_000
    fb = by_name["shop.orders:OrderService.create"].fallback
    assert isinstance(fb, MethodFallback) and fb.raise_ == "shop.errors:Unavailable"
    degrade = by_name["GET /legacy"].degrade
    assert degrade is not None and isinstance(degrade.fallback, HttpFallback)
    assert config.system.cpu_threshold == 0.8 and config.system.bbr


def test_empty_documents_are_valid() -> None:
    assert parse_config("", "g.yaml").rules == ()
    assert parse_config("rules:\n", "g.yaml").rules == ()


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "gov.yaml")
    return info.value


@pytest.mark.parametrize(("text", "line", "field", "fragment"), [
    ("rules:\n  - resource: a\n    flow: {qps: -1}\n", 3, "rules[0].flow.qps", "too small"),
    ("rules:\n  - resource: a\n    flow: {qps: .nan}\n", 3, "rules[0].flow.qps", "finite"),
    ("rules:\n  - resource: a\n    flow: {qps: true}\n", 3, "rules[0].flow.qps", "finite"),
    ("rules:\n  - resource: a\n    flow: {qsp: 1}\n", 3, "rules[0].flow.qsp", "unknown key"),
    ("rules:\n  - resource: a\n    flow:\n      qps: 1\n      behavior: slow\n", 5,
     "rules[0].flow.behavior", "one of"),
    ("rules:\n  - resource: a\n    circuit_breaker: {strategy: error_ratio, threshold: 1.5}\n",
     3, "rules[0].circuit_breaker.threshold", "between 0 and 1"),
    ("rules:\n  - resource: a\n    circuit_breaker: {strategy: error_ratio, threshold: 0.5, "
     "window: 10}\n", 3, "rules[0].circuit_breaker.window", "unit"),
    ("rules:\n  - resource: a\n    circuit_breaker: {strategy: slow_ratio, threshold: 0.5}\n",
     3, "rules[0].circuit_breaker", "max_rt"),
    ("rules:\n  - resource: a\n", 2, "rules[0]", "sets no rule"),
    ("rules:\n  - resource: a\n    flow: {qps: 1}\n  - resource: a\n    flow: {qps: 2}\n", 4,
     "rules[1]", "already has rules at line 2"),
    ("rules:\n  - resource: a\n    flow: {qps: 1}\n    flow: {qps: 2}\n", 4, "rules[0].flow",
     "duplicate key"),
    ("rule:\n  - resource: a\n", 1, "rule", "unknown section"),
    ("rules:\n  - resource: a\n    fallback: {raise: 'eval(1)'}\n    flow: {qps: 1}\n", 3,
     "rules[0].fallback.raise", "module:ExceptionClass"),
    ("rules:\n  - resource: a\n    flow: {qps: 1}\n    fallback: {status: 429, value: 1}\n", 4,
     "rules[0].fallback", "mixes"),
    ("rules:\n  - resource: a\n    degrade: true\n", 3, "rules[0].degrade", "has none"),
    ("rules:\n  - resource: a\n    hot_param: {from: body, name: x, qps: 1}\n", 3,
     "rules[0].hot_param.from", "one of"),
    ("rules:\n  - resource: a\n    hot_param: {from: query, name: x}\n", 3,
     "rules[0].hot_param", "exactly one"),
    ("system:\n  cpu: {threshold: 80}\n", 2, "system.cpu.threshold", "ratio"),
    ("metrics: {port: 99999}\n", 1, "metrics.port", "too large"),
    ("rules:\n  - resource: a\n    flow: {qps: 1\n", 4, "<yaml>", "YAML syntax"),
])
def test_errors_point_at_file_line_field(text: str, line: int, field: str,
                                         fragment: str) -> None:
    exc = error(text)
    assert (exc.file, exc.line, exc.field) == ("gov.yaml", line, field), str(exc)
    assert fragment in str(exc)
    assert "Fix:" in str(exc) and exc.fix
    assert str(exc).startswith(f"gov.yaml:{line}: {field}: ")


def test_unknown_keys_list_the_valid_ones() -> None:
    exc = error("rules:\n  - resource: a\n    flow: {qps: 1, burst: 3}\n")
    for key in ("behavior", "cold_factor", "max_queueing", "qps", "warm_up_period"):
        assert key in exc.fix
    top = error("routes: []\n")
    assert all(s.name in top.fix for s in SECTIONS)


def test_merge_keys_are_refused() -> None:
    exc = error("rules:\n  - &r\n    resource: a\n    flow: {qps: 1}\n  - <<: *r\n"
                "    resource: b\n")
    assert "merge keys" in exc.problem


def test_durations() -> None:
    config = parse_config("rules:\n  - resource: a\n    flow: {qps: 5, behavior: throttling, "
                          "max_queueing: 1.5s}\n  - resource: b\n    circuit_breaker: "
                          "{strategy: error_count, threshold: 3, window: 1m, recovery: 500ms}\n")
    flow = config.rules[0].flow
    breaker = config.rules[1].circuit_breaker
    assert flow is not None and flow.max_queueing_ms == 1500
    assert breaker is not None and (breaker.window_ms, breaker.recovery_ms) == (60_000, 500)

"""Fallbacks and degradation: HTTP answers, method values and exceptions."""

from __future__ import annotations

import pytest
from gov_helpers import MakeEngine, clock, make_engine

from instpy.runtime.entry import Blocked
from instpy.runtime.errors import BlockedError
from instpy.runtime.fallback import HttpFallback, MethodFallback, resolve_exception


def test_default_http_fallback_is_429_text(make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: r\n    flow: {qps: 0}\n")
    res = eng.entry("r")
    assert isinstance(res, Blocked)
    assert res.fallback is None
    answer = res.http_fallback()
    assert answer.status == 429 and answer.content_type.startswith("text/plain")
    assert answer.body


def test_configured_http_fallback(make_engine: MakeEngine) -> None:
    eng = make_engine('rules:\n  - resource: "GET /greet1a"\n    flow: {qps: 0}\n'
                      '    fallback: {status: 503, body: "busy", content_type: text/html, '
                      'headers: {Retry-After: 1}}\n')
    res = eng.entry("GET /greet1a")
    assert isinstance(res, Blocked)
    fb = res.http_fallback()
    assert (fb.status, fb.body, fb.content_type) == (503, "busy", "text/html")
    assert ("Retry-After", "1") in fb.response_headers()


def test_degrade_redirect_answers_without_running(make_engine: MakeEngine) -> None:
    eng = make_engine('rules:\n  - resource: "GET /legacy"\n'
                      '    degrade: {redirect: "https://example.com/new"}\n')
    res = eng.entry("GET /legacy")
    assert isinstance(res, Blocked) and res.family == "degrade"
    fb = res.http_fallback()
    assert fb.status == 302 and ("Location", "https://example.com/new") in fb.response_headers()
    assert isinstance(eng.entry("GET /legacy", "outbound"), Blocked)


def test_degrade_true_uses_fallback_for_outbound(make_engine: MakeEngine) -> None:
    eng = make_engine('rules:\n  - resource: "GET http://b/x"\n    degrade: true\n'
                      '    fallback: {status: 200, body: "cached"}\n')
    res = eng.entry("GET http://b/x", "outbound")
    assert isinstance(res, Blocked) and res.http_fallback().body == "cached"


def test_method_value_and_raise(make_engine: MakeEngine) -> None:
    eng = make_engine('rules:\n'
                      '  - resource: "m:value"\n    degrade: {value: [1, 2]}\n'
                      '  - resource: "m:raise"\n    flow: {qps: 0}\n'
                      '    fallback: {raise: "builtins:LookupError", message: "nope"}\n'
                      '  - resource: "m:none"\n    flow: {qps: 0}\n')
    value = eng.entry("m:value", "internal")
    assert isinstance(value, Blocked) and value.raise_or_value() == [1, 2]
    raised = eng.entry("m:raise", "internal")
    assert isinstance(raised, Blocked)
    with pytest.raises(LookupError, match="nope"):
        raised.raise_or_value()
    plain = eng.entry("m:none", "internal")
    assert isinstance(plain, Blocked)
    with pytest.raises(BlockedError, match="m:none"):
        plain.raise_or_value()


def test_resolve_exception_is_safe() -> None:
    assert resolve_exception("builtins:KeyError") is KeyError
    assert resolve_exception("instpy.runtime.errors:BlockedError") is BlockedError
    with pytest.raises(TypeError, match="not an exception class"):
        resolve_exception("builtins:len")
    with pytest.raises(ImportError, match="cannot import"):
        resolve_exception("no_such_module_xyz:Error")
    with pytest.raises(ImportError, match="has no"):
        resolve_exception("builtins:NoSuchError")


def test_fallback_types() -> None:
    assert HttpFallback().status == 429
    fb = MethodFallback(raise_="builtins:ValueError", message="m")
    exc = fb.exception("r", "flow")
    assert isinstance(exc, ValueError) and str(exc) == "m"


__all__ = ["clock", "make_engine"]  # fixtures used by name

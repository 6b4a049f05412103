"""Flask inbound governance (Flask >=2.2,<4).

Choke point: `flask.app:Flask.full_dispatch_request`. Every request that Flask routes passes it
exactly once, after routing (`request.url_rule` carries the route template, so the resource is
`GET /users/<int:id>` and not one resource per user), before `before_request` functions (a
blocked request costs the service nothing more), and what it returns is the response (so a
skipped call answers the request). `wsgi_app` runs before routing; `dispatch_request` runs after
the before-request functions.

Per request the hook reads the request from Flask's context variable (the `request` proxy costs
a lookup per attribute), the route's kept resource handle, and the lane headers from the WSGI
environ (two dict reads); it keeps nothing for the exit hook when governance has nothing to do
for the route.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask import globals as flask_globals

from instpy.runtime.call import Call
from instpy.runtime.governance import Blocked
from instpy.runtime.hooks.http import finish_token, inbound, lane_in
from instpy.runtime.lanes.context import tag_from

DISTRIBUTION = "flask"
VERSIONS = ">=2.2,<4"

_REQUEST_CONTEXT = getattr(flask_globals, "_cv_request", None)  # Flask >=2.2


def _current() -> Any:
    """The request object itself (not the proxy)."""
    if _REQUEST_CONTEXT is not None:
        context = _REQUEST_CONTEXT.get(None)
        return None if context is None else context.request
    return request._get_current_object()  # type: ignore[attr-defined]


def _lookup(source: str, name: str) -> object:
    req = _current()
    if source == "query":
        return req.args.get(name)
    if source == "header":
        return req.headers.get(name)
    if source == "cookie":
        return req.cookies.get(name)
    if source == "path":
        return (req.view_args or {}).get(name)
    return None


def _header(name: str) -> str | None:
    value = _current().headers.get(name)
    return None if value is None else str(value)


def on_enter(call: Call) -> None:
    req = _current()
    if req is None:
        return
    rule = req.url_rule
    if rule is None:
        return  # routing failed: Flask answers 404/405 itself, there is no endpoint to govern
    res = inbound(req.method, rule.rule)
    if res.active:
        token = res.enter(_lookup)
        if token.__class__ is Blocked:
            fallback = token.http_fallback()
            app: Flask = call.arg("self")
            call.skip(app.response_class(fallback.body, status=fallback.status,
                                         headers=fallback.response_headers()))
            return
        call.data["token"] = (res, token)
    environ = req.environ
    lane_in(tag_from(environ.get("HTTP_X_MSE_TAG"), environ.get("HTTP_BAGGAGE")), _lookup,
            _header)


def on_exit(call: Call) -> None:
    admitted = call.data.get("token")
    if admitted is not None:
        finish_token(admitted[0], admitted[1], call.exception,
                     getattr(call.return_value, "status_code", None))

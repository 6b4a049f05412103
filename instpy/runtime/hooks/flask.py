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
for the route. From the target's second call on a governor (`_Governor`) takes the requests
without the hook dispatch: no `Call` per request, the handle and token kept by generated code.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask import globals as flask_globals

from instpy.runtime.call import Call
from instpy.runtime.governance import Blocked, Resource
from instpy.runtime.hooks.http import INBOUND, LANES, finish_token, inbound, lane_in
from instpy.runtime.injected import HookCall, Target, record_failure
from instpy.runtime.lanes.context import TAG, tag_from

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


ENTER = f"{__name__}:on_enter"
EXIT = f"{__name__}:on_exit"


class _Governor:
    """`full_dispatch_request` governed without the hook dispatch (`injected.Governor`),
    installed on the target's first call when these hooks are all it runs: no `Call` per
    request, the route's handle and token kept by generated code between `enter` and
    `leave`/`fail`. Fails open like the dispatch (counted, logged once)."""

    __slots__ = ("target",)

    def __init__(self, target: Target) -> None:
        self.target = target

    def enter(self, values: tuple[Any, ...]) -> object:
        """None (nothing to record), `(handle, token)` for an admitted request, or a skipped
        `HookCall` answered with the fallback."""
        admitted: tuple[Resource, object] | None = None
        try:
            req = _current()
            if req is None:
                return None
            rule = req.url_rule
            if rule is None:
                return None  # routing failed: Flask answers 404/405 itself
            method = req.method
            by_template = INBOUND.get(method)
            res = None if by_template is None else by_template.get(rule.rule)
            if res is None:
                res = inbound(method, rule.rule)
            if res.active:
                token = res.enter(_lookup)
                if token.__class__ is Blocked:
                    return _answered(HookCall(self.target, values), token)
                admitted = (res, token)
            environ = req.environ
            direct, baggage = environ.get("HTTP_X_MSE_TAG"), environ.get("HTTP_BAGGAGE")
            if direct is not None or baggage is not None or LANES[0].lanes:
                lane_in(tag_from(direct, baggage), _lookup, _header)
            elif TAG.get() is not None:
                TAG.set(None)
            return admitted
        except Exception as exc:
            if admitted is not None:
                admitted[0].exit(admitted[1], None)  # admitted, but the body runs ungoverned
            record_failure(ENTER, exc, "raised in on_enter")
            return None

    def leave(self, token: Any, value: Any) -> Any:
        if token.__class__ is HookCall:  # entered through the hook dispatch, before us
            return token.leave(value)
        try:
            finish_token(token[0], token[1], None, getattr(value, "status_code", None))
        except Exception as exc:  # fail open: the caller still gets its answer
            record_failure(EXIT, exc, "raised in on_exit")
        return value

    def fail(self, token: Any, exc: BaseException) -> bool:
        if token.__class__ is HookCall:
            return bool(token.fail(exc))
        try:
            finish_token(token[0], token[1], exc, None)
        except Exception as error:
            record_failure(EXIT, error, "raised in on_exit")
        return True

    # full_dispatch_request is synchronous: generated code never calls the async twins.
    async def aenter(self, values: tuple[Any, ...]) -> Any:
        return await self.target.arun_hooks(values)

    async def aleave(self, token: Any, value: Any) -> Any:
        return await token.aleave(value)

    async def afail(self, token: Any, exc: BaseException) -> bool:
        return bool(await token.afail(exc))


def _answered(call: Call, blocked: Blocked) -> Call:
    """Skip the call with the blocked request's fallback answer."""
    fallback = blocked.http_fallback()
    app: Flask = call.arg("self")
    call.skip(app.response_class(fallback.body, status=fallback.status,
                                 headers=fallback.response_headers()))
    return call


# -- the hooks: the target's first call, and targets that also run other hooks --------------


def on_enter(call: Call) -> None:
    target = call.target
    gov = target.govern_alone(((ENTER,), (EXIT,)), lambda: _Governor(target))
    if not isinstance(gov, _Governor):
        gov = _Governor(target)  # the target runs other hooks too: this call only
    outcome = gov.enter(tuple(call.arg(name) for name in target.names))
    if outcome.__class__ is HookCall:
        call.skip(outcome.return_value)
    elif outcome is not None:
        call.data["token"] = outcome


def on_exit(call: Call) -> None:
    admitted = call.data.get("token")
    if admitted is not None:
        finish_token(admitted[0], admitted[1], call.exception,
                     getattr(call.return_value, "status_code", None))

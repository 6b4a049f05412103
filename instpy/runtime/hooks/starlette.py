"""Starlette and FastAPI inbound governance (Starlette >=0.27,<2; FastAPI on top of it).

Choke point: `starlette.routing:Route.handle`. The Router calls it once per request, after it
matched the request against its routes (so `self.path` is the route template, `/users/{user_id}`,
not one resource per user) and before the route's own middleware and the endpoint run; what it
sends through the ASGI `send` is the whole answer, so a skipped call that sends the fallback
answers the request and the endpoint never runs. Sync endpoints (run in the thread pool) and
async ones pass through it alike, and so does every FastAPI `APIRoute` (a `Route` subclass).
Earlier places see no template (`Starlette.__call__`, the middleware stack, `Router.app` before
matching); later ones are not on every route (`request_response` serves only function endpoints,
not `HTTPEndpoint` classes or ASGI apps given as endpoints).

Two helpers make the template complete:

* `Mount.handle` (enter only) appends the mount's template to a key of the request's scope, so a
  route of a mounted sub-application is `GET /v2/items/{item_id}`, not `GET /items/{item_id}`.
* FastAPI >=0.137 answers the routes of an included router from an "effective route context"
  (prefix applied) in `fastapi.routing:APIRoute.handle` without calling `Route.handle`;
  `on_enter_fastapi` governs exactly those calls, with the context's full path, and leaves every
  other call to `Route.handle` (so nothing is counted twice).

Not governed: routing failures (404, and the 405 `Route.handle` itself answers for a method the
route does not accept), websocket routes (`WebSocketRoute`: no request/response to answer with a
fallback), `Host` and static mounts without routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response

from instpy.runtime.call import Call
from instpy.runtime.governance import Blocked, HttpFallback, Resource
from instpy.runtime.hooks.http import finish_token, inbound_async, kept_inbound, lane_in
from instpy.runtime.lanes.context import tag_from
from instpy.runtime.resource import wait_turn, waiting

DISTRIBUTION = "starlette"
VERSIONS = ">=0.27,<2"
# The second rule of rules/starlette.yaml: FastAPI's own route handling for included routers.
FASTAPI_DISTRIBUTION = "fastapi"
FASTAPI_VERSIONS = ">=0.137,<1"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

# Scope key holding the templates of the mounts the request went through ("/v2", "/org/{org}").
PREFIX_KEY = "instpy.route_prefix"
_LANE_KEYS = (b"x-mse-tag", b"baggage")


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode("latin-1")
    # ASGI makes `headers` optional in a scope (test clients and hand-built scopes omit it)
    for key, value in scope.get("headers", ()):
        if key == wanted:
            return str(value.decode("latin-1"))
    return None


def _upstream_tag(scope: Scope) -> str | None:
    """The lane tag an upstream service sent. Most requests carry none: one C-level pass
    (a dict of the header pairs) tells, before any header is read in Python."""
    headers = scope.get("headers")
    if not headers:
        return None
    present = dict(headers)
    if _LANE_KEYS[0] not in present and _LANE_KEYS[1] not in present:
        return None
    return tag_from(_header(scope, "x-mse-tag"), _header(scope, "baggage"))


class _Exchange:
    """One governed request: the ASGI `send` it wraps (to see the status), and lazy lookups."""

    __slots__ = ("scope", "send", "status")

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope = scope
        self.send = send
        self.status: int | None = None

    def __call__(self, message: Message) -> Awaitable[None]:
        # Return the awaitable instead of awaiting it: no extra coroutine frame per message.
        if message["type"] == "http.response.start":
            self.status = message["status"]
        return self.send(message)

    def header(self, name: str) -> str | None:
        return _header(self.scope, name)

    def lookup(self, source: str, name: str) -> object:
        if source == "query":
            from starlette.datastructures import QueryParams

            return QueryParams(self.scope.get("query_string", b"")).get(name)
        if source == "header":
            return self.header(name)
        if source == "cookie":
            from starlette.requests import cookie_parser

            cookie = self.header("cookie")
            return None if cookie is None else cookie_parser(cookie).get(name)
        if source == "path":
            return self.scope.get("path_params", {}).get(name)
        return None


def _answer(fallback: HttpFallback) -> Response:
    response = Response(fallback.body, status_code=fallback.status)
    for name, value in fallback.response_headers():
        response.headers.append(name, value)
    return response


def _govern(call: Call, scope: Scope, method: str, template: str) -> Awaitable[None] | None:
    """Govern the route's call. Synchronous on the common path (the route's handle is kept, the
    call passes or waits for nothing): None, so the hook dispatch awaits nothing. A coroutine
    only when there is something to await: a route's first request (the engine may still have
    to be built off the loop), a throttled call's turn, a blocked call's fallback answer."""
    prefix = scope.get(PREFIX_KEY)
    path = template if prefix is None else prefix + template
    res = kept_inbound(method, path)
    if res is None:
        return _govern_first(call, scope, method, path)
    return _admit(call, scope, res)


async def _govern_first(call: Call, scope: Scope, method: str, path: str) -> None:
    pending = _admit(call, scope, await inbound_async(method, path))
    if pending is not None:
        await pending


def _admit(call: Call, scope: Scope, res: Resource) -> Awaitable[None] | None:
    exchange = _Exchange(scope, call.arg("send"))
    if res.active:
        token = res.enter_nowait(exchange.lookup)
        if token.__class__ is Blocked:
            return _answer_blocked(call, scope, token)
        call.data["token"] = (res, token, exchange)
        call.replace("send", exchange)
        if waiting(token):
            return _enter_lane_after(wait_turn(token), scope, exchange)
    lane_in(_upstream_tag(scope), exchange.lookup, exchange.header)
    return None


async def _answer_blocked(call: Call, scope: Scope, blocked: Blocked) -> None:
    answer = _answer(blocked.http_fallback())
    await answer(scope, call.arg("receive"), call.arg("send"))
    call.skip(None)


async def _enter_lane_after(turn: Awaitable[None], scope: Scope, exchange: _Exchange) -> None:
    await turn
    lane_in(_upstream_tag(scope), exchange.lookup, exchange.header)


def on_enter(call: Call) -> Awaitable[None] | None:
    """`Route.handle`: govern the matched route under its template."""
    route = call.arg("self")
    scope: Scope = call.arg("scope")
    method: str = scope["method"]
    methods = route.methods
    if methods and method not in methods:
        return None  # Route.handle answers 405 itself: a routing failure, not an endpoint call
    return _govern(call, scope, method, route.path)


def on_exit(call: Call) -> None:
    admitted: tuple[Resource, object, _Exchange] | None = call.data.get("token")
    if admitted is None:
        return
    exception = call.exception
    status = admitted[2].status
    if isinstance(exception, HTTPException) and exception.status_code < 500:
        # Older Starlette lets an endpoint's HTTPException reach the app's exception middleware
        # through here; a 4xx is the caller's fault, not a failure of this endpoint.
        status = exception.status_code
        exception = None
    finish_token(admitted[0], admitted[1], exception, status)


def on_enter_mount(call: Call) -> None:
    """`Mount.handle`: remember the mount's template for the routes below it."""
    scope: Scope = call.arg("scope")
    prefix = scope.get(PREFIX_KEY)
    path: str = call.arg("self").path
    scope[PREFIX_KEY] = path if prefix is None else prefix + path


_effective_context: Callable[[Scope], Any] | None = None


def _no_context(scope: Scope) -> None:
    return None


def _fastapi_context(scope: Scope) -> Any:
    global _effective_context
    get = _effective_context
    if get is None:
        from fastapi import routing

        found: Callable[[Scope], Any] = getattr(routing, "_get_scope_effective_route_context",
                                                _no_context)
        get = _effective_context = found
    return get(scope)


def on_enter_fastapi(call: Call) -> Awaitable[None] | None:
    """`APIRoute.handle`: govern a route of an included router (FastAPI >=0.137), whose full
    template lives in the effective route context; other calls reach `Route.handle`."""
    scope: Scope = call.arg("scope")
    context = _fastapi_context(scope)
    if context is None or context.original_route is not call.arg("self"):
        return None
    method: str = scope["method"]
    methods = context.methods
    if methods and method not in methods:
        return None
    return _govern(call, scope, method, context.path)

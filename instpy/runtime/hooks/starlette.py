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

Every request pays for what is done here, so a target whose hooks are exactly these gets a
governor (`_Governor`, `injected.Target.govern`) on its first call: later requests go from the
generated code straight to it, one coroutine in and one out, with no hook loop in between. The
hooks remain for that first call and for targets that also run hooks of their own; both paths
run the governor's one `aenter`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from operator import itemgetter
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response

from instpy.runtime.call import Call
from instpy.runtime.governance import Blocked, HttpFallback, Resource
from instpy.runtime.hooks.http import INBOUND, LANES, inbound_async, lane_in
from instpy.runtime.injected import HookCall, Target, record_failure
from instpy.runtime.lanes.context import TAG, tag_from
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
_LANE_KEYS = frozenset((b"x-mse-tag", b"baggage"))
_name = itemgetter(0)  # of an ASGI header pair
ENTER = f"{__name__}:on_enter"
ENTER_FASTAPI = f"{__name__}:on_enter_fastapi"
EXIT = f"{__name__}:on_exit"
_ADMITTED = "instpy.exchange"  # in `call.data`: the admitted request's _Exchange


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode("latin-1")
    # ASGI makes `headers` optional in a scope (test clients and hand-built scopes omit it)
    for key, value in scope.get("headers", ()):
        if key == wanted:
            return str(value.decode("latin-1"))
    return None


def _upstream_tag(scope: Scope) -> str | None:
    """The lane tag an upstream service sent. Most requests carry none: one C-level pass over
    the header names tells, before any header is read in Python."""
    headers = scope.get("headers")
    if not headers or _LANE_KEYS.isdisjoint(map(_name, headers)):
        return None
    return tag_from(_header(scope, "x-mse-tag"), _header(scope, "baggage"))


class _Exchange:
    """One governed request: the ASGI `send` it wraps (to see the status), lazy lookups, and,
    once admitted, the handle and token its end is recorded against."""

    __slots__ = ("res", "scope", "send", "status", "token")

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope = scope
        self.send = send
        self.status: int | None = None
        self.res: Resource | None = None
        self.token: object = None

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

    def finish(self, exception: BaseException | None) -> None:
        """Record the end of the admitted request (once); fails open (counted, logged once)."""
        res = self.res
        if res is None:
            return
        self.res = None
        try:
            if exception is None:
                status = self.status  # a 5xx is a failure of the endpoint; a 4xx the caller's
                res.exit(self.token, status is not None and status >= 500)
            elif isinstance(exception, HTTPException) and exception.status_code < 500:
                # Older Starlette lets an endpoint's HTTPException reach the app's exception
                # middleware through here; a 4xx is the caller's fault, not a failure of this
                # endpoint.
                res.exit(self.token, False)
            else:
                res.exit(self.token, exception)
        except Exception as error:
            record_failure(EXIT, error, "raised in on_exit")


def _answer(fallback: HttpFallback) -> Response:
    response = Response(fallback.body, status_code=fallback.status)
    for name, value in fallback.response_headers():
        response.headers.append(name, value)
    return response


def _included(route: Any, scope: Scope) -> str | None:
    """`APIRoute.handle`: the full template of a route of an included router (FastAPI
    >=0.137), from the effective route context; None for calls that reach `Route.handle`."""
    context = _fastapi_context(scope)
    if context is None or context.original_route is not route:
        return None
    methods = context.methods
    if methods and scope["method"] not in methods:
        return None
    template: str = context.path
    return template


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


# -- the governor: these hooks without the generic hook dispatch -----------------------------

class _Governor:
    """`Route.handle` (or FastAPI's `APIRoute.handle`) governed without the hook dispatch
    (`injected.Governor`), installed on a target's first call when these hooks are all it
    runs. One coroutine each way, no `Call` unless the body must see the swapped `send` or skip;
    fails open like the dispatch: what raises is counted and logged once, and the request runs
    as if it were not governed."""

    __slots__ = ("included", "name", "receive_at", "scope_at", "self_at", "send_at", "target")

    def __init__(self, target: Target, name: str) -> None:
        self.target = target
        self.name = name
        self.included = name == ENTER_FASTAPI
        at = target.positions
        self.self_at, self.scope_at = at["self"], at["scope"]
        self.receive_at, self.send_at = at["receive"], at["send"]

    async def aenter(self, values: tuple[Any, ...]) -> HookCall | None:
        """Admit the request: None (not governed: run the body unchanged), else the `Call`
        the body runs with (`send` swapped to see the status; skipped when answered here).
        Awaits only for a route's first request (the engine may still have to be built off
        the loop), a throttled request's turn and a blocked request's fallback answer."""
        exchange = None
        try:
            scope = values[self.scope_at]
            route = values[self.self_at]
            method: str = scope["method"]
            if self.included:
                template = _included(route, scope)
                if template is None:
                    return None
            else:
                methods = route.methods
                if methods and method not in methods:
                    return None  # Route.handle answers 405 itself: a routing failure
                template = route.path
            prefix = scope.get(PREFIX_KEY)
            if prefix is not None:
                template = prefix + template
            by_template = INBOUND.get(method)
            res = None if by_template is None else by_template.get(template)
            if res is None:
                res = await inbound_async(method, template)
            send_at = self.send_at
            exchange = _Exchange(scope, values[send_at])
            if res.active:
                token = res.enter_nowait(exchange.lookup)
                if token.__class__ is Blocked:
                    exchange = None
                    answer = _answer(token.http_fallback())
                    await answer(scope, values[self.receive_at], values[send_at])
                    call = HookCall(self.target, values)
                    call.skip(None)
                    return call
                exchange.res, exchange.token = res, token
                if token.__class__ is not int and waiting(token):  # lean paths: an int token
                    await wait_turn(token)
            # The request's lane: the upstream's tag, else the first lane it matches. The
            # request is read only where a tag was sent or lanes are configured.
            headers = scope.get("headers")
            if (headers and not _LANE_KEYS.isdisjoint(map(_name, headers))) or LANES[0].lanes:
                lane_in(_upstream_tag(scope), exchange.lookup, exchange.header)
            elif TAG.get() is not None:
                TAG.set(None)
            if exchange.res is None:
                return None
            # The body runs with the exchange as its `send`; its end finds it there.
            return HookCall(self.target, (*values[:send_at], exchange, *values[send_at + 1:]))
        except Exception as exc:
            if exchange is not None:
                exchange.finish(None)  # admitted, but the body runs ungoverned
            record_failure(self.name, exc, "raised in on_enter")
            return None

    async def aleave(self, call: HookCall, value: Any) -> Any:
        exchange = call.args[self.send_at]
        if exchange.__class__ is _Exchange:
            exchange.finish(None)
        return value

    async def afail(self, call: HookCall, exc: BaseException) -> bool:
        exchange = call.args[self.send_at]
        if exchange.__class__ is _Exchange:
            exchange.finish(exc)
        return True

    # Route.handle is a coroutine: generated code never calls the synchronous twins; they
    # serve it through the hook dispatch all the same.
    def enter(self, values: tuple[Any, ...]) -> Any:
        return self.target.run_hooks(values)

    def leave(self, call: HookCall, value: Any) -> Any:
        return call.leave(value)

    def fail(self, call: HookCall, exc: BaseException) -> bool:
        return call.fail(exc)


def _governor(target: Target, name: str) -> _Governor:
    """The target's governor, installed on its first call when these hooks are all it runs;
    else one for this call, run through the hook dispatch with the target's other hooks."""
    gov = target.governor
    if isinstance(gov, _Governor):
        return gov
    gov = target.govern_alone(((name,), (EXIT,)), lambda: _Governor(target, name))
    return gov if isinstance(gov, _Governor) else _Governor(target, name)


async def _dispatched(call: Call, gov: _Governor) -> None:
    """A call that came through the hook dispatch: the governor's outcome, applied to it."""
    admitted = await gov.aenter(tuple(call.arg(name) for name in call.target.names))
    if admitted is None:
        return
    if admitted.skipped:
        call.skip(admitted.return_value)
        return
    call.replace("send", admitted.arg("send"))
    call.data[_ADMITTED] = admitted.args[gov.send_at]


# -- the hooks (a target's first call, and targets that run other hooks too) -----------------


def on_enter(call: Call) -> Awaitable[None]:
    """`Route.handle`: govern the matched route under its template."""
    return _dispatched(call, _governor(call.target, ENTER))


def on_enter_fastapi(call: Call) -> Awaitable[None]:
    """`APIRoute.handle`: govern a route of an included router (FastAPI >=0.137), whose full
    template lives in the effective route context; other calls reach `Route.handle`."""
    return _dispatched(call, _governor(call.target, ENTER_FASTAPI))


def on_exit(call: Call) -> None:
    exchange: _Exchange | None = call.data.get(_ADMITTED)
    if exchange is not None:
        exchange.finish(call.exception)

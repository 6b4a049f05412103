"""aiohttp server inbound governance (aiohttp >=3.9,<4).

Choke point: `aiohttp.web_app:Application._handle`. The server calls it once per request on the
top-level application (sub-applications are routed from inside it), and what it returns is the
response; it resolves the route and then runs the middlewares and the handler. Governing here
answers a blocked request before any middleware or handler runs. A middleware of our own
(OTel's way) would need the application's construction rewritten, and a hook on the router
alone could not answer the request.

`_handle` resolves first thing, so its enter hook resolves the request itself, through the
application's own router (`await app.router.resolve(request)`, sub-applications and domains
included), and governs `METHOD canonical`: the resource's canonical path, `GET /users/{id}`,
with a sub-application's prefix. A second, tiny hook on `UrlDispatcher.resolve` hands the body
that same match instead of resolving a second time. A request that does not resolve (404, 405)
is not governed: aiohttp answers it as usual. An `HTTPException` a handler raises is its
response (a 4xx is the caller's error, a 5xx counts as a failure). Admission waits with the
loop's own sleep, never blocking the loop.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from instpy.runtime.call import Call
from instpy.runtime.hooks.http import Admission, admit_inbound_async, finish

DISTRIBUTION = "aiohttp"
VERSIONS = ">=3.9,<4"

# (request, match info) the enter hook has just resolved: the body's own resolve takes it.
_RESOLVED: ContextVar[tuple[web.Request, Any] | None] = ContextVar(
    "instpy_aiohttp_resolved", default=None)


def _lookup(source: str, name: str) -> object:
    # Called during admission, while _RESOLVED holds the request being admitted.
    pending = _RESOLVED.get()
    if pending is None:
        return None
    request, match = pending
    if source == "query":
        return request.query.get(name)
    if source == "header":
        return request.headers.get(name)
    if source == "cookie":
        return request.cookies.get(name)
    if source == "path":
        return match.get(name)
    return None


async def on_enter(call: Call) -> None:
    app: web.Application = call.params["self"]
    request: web.Request = call.params["request"]
    match = await app.router.resolve(request)
    if match.http_exception is not None:
        return  # 404/405: not an endpoint; the body resolves again and aiohttp answers
    resource = match.route.resource
    if resource is None:
        return
    _RESOLVED.set((request, match))
    outcome = await admit_inbound_async(f"{request.method} {resource.canonical}", _lookup,
                                        request.headers.get)
    if isinstance(outcome, Admission):
        call.data["entry"] = outcome
        return
    _RESOLVED.set(None)
    call.skip(web.Response(body=outcome.body.encode("utf-8"), status=outcome.status,
                           headers=CIMultiDict(outcome.response_headers())))


def on_exit(call: Call) -> None:
    exception = call.exception
    if isinstance(exception, web.HTTPException):
        finish(call.data.get("entry"), None, exception.status)
        return
    finish(call.data.get("entry"), exception, getattr(call.return_value, "status", None))


def on_resolve(call: Call) -> None:
    """`UrlDispatcher.resolve`: the match the enter hook computed for this request."""
    pending = _RESOLVED.get()
    if pending is not None and pending[0] is call.params["request"]:
        _RESOLVED.set(None)
        call.skip(pending[1])

"""httpx outbound governance (httpx >=0.23,<1), sync and async.

Choke point: `httpx._client:Client.send` and its twin `AsyncClient.send`. Every request made with
httpx — the module functions (`httpx.get` opens a `Client`), `Client.request/get/post/...`,
`Client.stream` — goes through `send` exactly once, with a built `Request` whose method and URL are
final, before authentication and redirects (so a call that follows redirects is one call to its
destination, as the caller sees it). What `send` returns is the caller's `Response`, so a blocked
or degraded call is answered with one built from the fallback and the dependency is never
contacted. The transports (`HTTPTransport.handle_request`, where OpenTelemetry hooks) see every
redirect hop separately and miss custom transports (`MockTransport`, `ASGITransport`, a user's
own); `send` governs whatever transport the client uses.
"""

from __future__ import annotations

from typing import Any

from httpx import URL, Request, Response

from instpy.runtime.call import Call
from instpy.runtime.governance import HttpFallback
from instpy.runtime.hooks.client import admit, admit_async, exit_hook, exit_hook_async
from instpy.runtime.hooks.http import nested_client, outbound_resource, outgoing_headers, route

DISTRIBUTION = "httpx"
VERSIONS = ">=0.23,<1"


def _point(request: Request, url: str) -> None:
    request.url = URL(url)
    request.headers["Host"] = request.url.netloc.decode("ascii")


def _prepare(request: Request) -> str:
    """Route the request, add the propagated headers; return its resource name, which names the
    service asked for, not the instance routing picked."""
    url = str(request.url)
    routed = route(url)
    if routed != url:
        _point(request, routed)
    for name, value in outgoing_headers():
        request.headers[name] = value
    return outbound_resource(request.method, url)


def _answer(request: Request, fallback: HttpFallback) -> Response:
    return Response(fallback.status, headers=fallback.response_headers(),
                    content=fallback.body.encode("utf-8"), request=request)


def on_enter(call: Call) -> None:
    """`Client.send`."""
    if nested_client():
        return  # an outer governed client already counts this call
    request: Request = call.params["request"]
    fallback = admit(call, _prepare(request))
    if fallback is not None:
        call.skip(_answer(request, fallback))


async def on_enter_async(call: Call) -> None:
    """`AsyncClient.send`: a throttled call waits with the event loop's sleep."""
    if nested_client():
        return
    request: Request = call.params["request"]
    fallback = await admit_async(call, _prepare(request))
    if fallback is not None:
        call.skip(_answer(request, fallback))


def _sent_to(call: Call) -> str | None:
    return str(call.params["request"].url)


def _resend(call: Call, base: str) -> Any:
    """The request re-pointed at `base`, sent again: a `Response`, or (`AsyncClient`) a
    coroutine that answers one."""
    params = call.params
    request: Request = params["request"]
    _point(request, base)
    return params["self"].send(request, **{k: v for k, v in params.items()
                                           if k not in ("self", "request")})


# A lane instance that refuses the connection: the same request goes to a base instance.
on_exit = exit_hook("status_code", _sent_to, _resend)
on_exit_async = exit_hook_async("status_code", _sent_to, _resend)

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

from httpx import URL, Request, Response

from instpy.runtime.call import Call
from instpy.runtime.governance import HttpFallback
from instpy.runtime.hooks.http import (
    Admission,
    admit_outbound,
    admit_outbound_async,
    connection_refused,
    finish,
    mark_client,
    nested_client,
    outbound_resource,
    outgoing_headers,
    route,
    route_fallback,
    unmark_client,
)

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


def _admitted(call: Call, outcome: Admission | HttpFallback, request: Request) -> None:
    if isinstance(outcome, Admission):
        call.data["entry"] = outcome
        call.data["client"] = mark_client()  # a governed client underneath must not count it
        return
    call.skip(_answer(request, outcome))


def on_enter(call: Call) -> None:
    """`Client.send`."""
    if nested_client():
        return  # an outer governed client already counts this call
    request: Request = call.params["request"]
    _admitted(call, admit_outbound(_prepare(request)), request)


async def on_enter_async(call: Call) -> None:
    """`AsyncClient.send`: a throttled call waits with the event loop's sleep."""
    if nested_client():
        return
    request: Request = call.params["request"]
    _admitted(call, await admit_outbound_async(_prepare(request)), request)


def _base_retry(call: Call) -> Request | None:
    """A lane instance refused the connection: the request re-pointed at a base instance."""
    if call.exception is None or not connection_refused(call.exception):
        return None
    request: Request = call.params["request"]
    base = route_fallback(str(request.url))
    if base is None:
        return None
    _point(request, base)
    return request


def _done(call: Call) -> None:
    unmark_client(call.data["client"])
    response = call.return_value
    finish(call.data.get("entry"), call.exception, getattr(response, "status_code", None))


def on_exit(call: Call) -> None:
    if call.data.get("client") is None:
        return
    request = _base_retry(call)
    if request is not None:  # still marked as a client call: the retry is not governed twice
        try:
            call.return_value = call.params["self"].send(request, **_send_kwargs(call))
            call.exception = None
        except Exception as exc:
            call.exception = exc
    _done(call)


async def on_exit_async(call: Call) -> None:
    if call.data.get("client") is None:
        return
    request = _base_retry(call)
    if request is not None:
        try:
            call.return_value = await call.params["self"].send(request, **_send_kwargs(call))
            call.exception = None
        except Exception as exc:
            call.exception = exc
    _done(call)


def _send_kwargs(call: Call) -> dict[str, object]:
    return {k: v for k, v in call.params.items() if k not in ("self", "request")}

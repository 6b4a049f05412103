"""aiohttp client outbound governance (aiohttp >=3.9,<4).

Choke point: `aiohttp.client:ClientSession._request`. Every request of a session — `get`,
`post`, `request`, `ws_connect`'s handshake — is one call of it, awaited inside the caller's
task, and it follows redirects itself: one call of the caller, one governed call. OTel adds a
`TraceConfig` in `ClientSession.__init__`, but trace callbacks cannot answer a request.

A blocked or degraded call is answered without contacting the dependency by a real
`ClientResponse` (the session's `response_class`) filled from the fallback: `status`, `reason`,
`ok`, `headers`, `await r.read()/text()/json()`, `r.content` as a stream, `raise_for_status()`,
`release()` and `async with` behave as usual, and the session's or call's `raise_for_status`
applies to it as to a real answer. Admission waits with the loop's own sleep.

Lanes: the resource names the URL asked for (the service); `http.route` then picks an instance
of the request's lane, else base, and the call carries `http.outgoing_headers()`. When a lane
instance refuses the connection, the exit hook (`client.exit_hook_async`) sends the same request
to a base instance, and the call's outcome is the retry's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from aiohttp import ClientResponse, ClientSession, RequestInfo
from aiohttp.base_protocol import BaseProtocol
from aiohttp.helpers import TimerNoop
from aiohttp.http import HttpVersion11
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from instpy.runtime.call import Call
from instpy.runtime.governance import HttpFallback
from instpy.runtime.hooks.client import admit_async, exit_hook_async, routed_url
from instpy.runtime.hooks.http import (
    nested_client,
    outbound_resource,
    outgoing_headers,
    reason,
    route,
)

DISTRIBUTION = "aiohttp"
VERSIONS = ">=3.9,<4"

_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class _Sent:
    """What a finished request writer reports (the constructor reads its size)."""

    output_size = 0


def _response(session: ClientSession, method: str, url: URL,
              fallback: HttpFallback) -> ClientResponse:
    loop = asyncio.get_running_loop()
    cls: type[ClientResponse] = session._response_class
    common: dict[str, Any] = {
        "writer": None, "continue100": None, "timer": TimerNoop(),
        "request_info": RequestInfo(url, method, _NO_HEADERS, url), "traces": [],
        "loop": loop, "session": session,
    }
    try:
        response = cls(method, url, stream_writer=_Sent(), **common)  # type: ignore[arg-type]
    except TypeError:  # before 3.12 the constructor took no stream_writer
        response = cls(method, url, **common)
    body = fallback.body.encode("utf-8")
    headers = CIMultiDict(fallback.response_headers())
    headers["Content-Length"] = str(len(body))
    response.version = HttpVersion11
    response.status = fallback.status
    response.reason = reason(fallback.status)
    response._headers = CIMultiDictProxy(headers)
    response._raw_headers = tuple((k.encode(), v.encode()) for k, v in headers.items())
    content = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    content.feed_data(body)
    content.feed_eof()
    response.content = content
    response._body = body
    return response


async def on_enter(call: Call) -> None:
    if nested_client():
        return
    params = call.params
    session: ClientSession = params["self"]
    url = session._build_url(params["str_or_url"])
    full = str(url)
    method: str = params["method"]
    resource = outbound_resource(method, full)  # before routing: resources name services
    routed = route(full)
    if routed != full:
        url = URL(routed)
        params["str_or_url"] = url
        call.data["routed"] = routed
    extra = outgoing_headers()
    if extra:
        headers: CIMultiDict[str] = CIMultiDict(params["headers"] or {})
        for name, value in extra:
            headers[name] = value
        params["headers"] = headers
    fallback = await admit_async(call, resource)
    if fallback is None:
        return
    query = params["params"]
    response = _response(session, method.upper(), url.extend_query(query) if query else url,
                         fallback)
    check = params["raise_for_status"]
    if check is None:
        check = session._raise_for_status
    try:
        if check is True:
            response.raise_for_status()
        elif callable(check):
            await check(response)
    except Exception as exc:  # the caller sees it as it would from a real answer
        call.throw(exc)
        return
    call.skip(response)


def _resend(call: Call, base: str) -> Awaitable[ClientResponse]:
    params = call.params
    kwargs = {k: v for k, v in params.items() if k not in ("self", "method", "str_or_url")}
    session: ClientSession = params["self"]
    return session._request(params["method"], URL(base), **kwargs)


on_exit = exit_hook_async("status", routed_url, _resend)

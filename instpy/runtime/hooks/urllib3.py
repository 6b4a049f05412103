"""urllib3 outbound governance (urllib3 >=2,<3).

Choke point: `urllib3.connectionpool:HTTPConnectionPool.urlopen` (HTTPS pools inherit it). Every
request urllib3 sends goes through a pool's `urlopen`: `PoolManager.request/urlopen` (one call
per redirect hop, each with its final host), `ProxyManager`, pools used directly
(`HTTPConnectionPool("host").request(...)`) and libraries built on urllib3 such as requests.
`PoolManager.urlopen` would miss pools used directly. The pool retries and, with
`redirect=True`, follows redirects by calling `urlopen` again: those inner calls run while this
hook has marked the context, so one call of the caller counts once; likewise a request made
through requests is governed by the requests hook alone (`http.nested_client`).

A blocked or degraded call is answered with an `urllib3.response.HTTPResponse` built from the
fallback (`.status`, `.headers`, `.data`, `.read()`, `.stream()`, `.json()` work as usual) and
the dependency is never contacted. `http.route` may rewrite the path of a call; sending it to
another host needs another pool, which the gray-release work adds.
"""

from __future__ import annotations

import io
from typing import Any

from urllib3._collections import HTTPHeaderDict
from urllib3.response import HTTPResponse

from instpy.runtime.call import Call
from instpy.runtime.governance import Entry, HttpFallback
from instpy.runtime.hooks.http import (
    admit_outbound,
    finish,
    mark_client,
    nested_client,
    outbound_resource,
    outgoing_headers,
    reason,
    route,
    unmark_client,
)

DISTRIBUTION = "urllib3"
VERSIONS = ">=2,<3"

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(pool: Any) -> str:
    host: str = pool.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # the pool keeps IPv6 literals without brackets
    port = pool.port
    if port is None or port == _DEFAULT_PORTS.get(pool.scheme):
        return f"{pool.scheme}://{host}"
    return f"{pool.scheme}://{host}:{port}"


def _answer(method: str, url: str, fallback: HttpFallback, params: dict[str, Any]) -> HTTPResponse:
    body = fallback.body.encode("utf-8")
    headers = HTTPHeaderDict()
    for name, value in fallback.response_headers():
        headers.add(name, value)
    headers["Content-Length"] = str(len(body))
    return HTTPResponse(
        body=io.BytesIO(body), headers=headers, status=fallback.status, version=11,
        reason=reason(fallback.status), preload_content=params["preload_content"],
        decode_content=params["decode_content"], request_method=method, request_url=url,
    )


def on_enter(call: Call) -> None:
    if nested_client():
        return  # an outer governed client (requests, or this pool's own retry) counts the call
    params = call.params
    url: str = params["url"]
    relative = url.startswith("/")
    full = _origin(params["self"]) + url if relative else url
    method: str = params["method"]
    resource = outbound_resource(method, full)  # before routing: resources name services
    routed = route(full)
    if routed != full:
        origin = _origin(params["self"])
        if routed.startswith(origin + "/"):
            full = routed
            params["url"] = routed[len(origin):] if relative else routed
    extra = outgoing_headers()
    if extra:
        headers = params["headers"]
        merged = HTTPHeaderDict(headers if headers is not None else params["self"].headers)
        for name, value in extra:
            merged[name] = value
        params["headers"] = merged
    outcome = admit_outbound(resource)
    if isinstance(outcome, Entry):
        call.data["entry"] = outcome
        call.data["client"] = mark_client()
        return
    call.skip(_answer(method, full, outcome, params))


def on_exit(call: Call) -> None:
    token = call.data.get("client")
    if token is None:
        return
    unmark_client(token)
    finish(call.data.get("entry"), call.exception, getattr(call.return_value, "status", None))

"""requests outbound governance (requests >=2.25,<3).

Choke point: `requests.sessions:Session.send`. Every request made with requests — the module
functions, `Session.request`, each redirect hop — reaches the network through it exactly once,
with a `PreparedRequest` whose method and final URL are known. A blocked or degraded call is
answered with a `Response` built from the fallback, and the dependency is never contacted.
"""

from __future__ import annotations

from requests import PreparedRequest, Response
from requests.structures import CaseInsensitiveDict

from instpy.runtime.call import Call
from instpy.runtime.governance import HttpFallback
from instpy.runtime.hooks.client import admit, exit_hook
from instpy.runtime.hooks.http import (
    nested_client,
    outbound_resource,
    outgoing_headers,
    reason,
    route,
)

DISTRIBUTION = "requests"
VERSIONS = ">=2.25,<3"


def _answer(request: PreparedRequest, fallback: HttpFallback) -> Response:
    response = Response()
    response.status_code = fallback.status
    response.reason = reason(fallback.status)
    response.headers = CaseInsensitiveDict(fallback.response_headers())
    response._content = fallback.body.encode("utf-8")
    response._content_consumed = True
    response.encoding = "utf-8"
    response.url = request.url or ""
    response.request = request
    return response


def on_enter(call: Call) -> None:
    if nested_client():
        return  # our own retry on a base instance (see on_exit): governed by the outer call
    request: PreparedRequest = call.params["request"]
    # The resource names the destination service; routing then picks one of its instances.
    resource = outbound_resource(request.method or "GET", request.url or "")
    request.url = route(request.url or "")
    for name, value in outgoing_headers():
        request.headers[name] = value
    fallback = admit(call, resource)  # admitted: urllib3 underneath must not count it again
    if fallback is not None:
        call.skip(_answer(request, fallback))


def _sent_to(call: Call) -> str | None:
    url: str | None = call.params["request"].url
    return url


def _resend(call: Call, base: str) -> Response:
    request: PreparedRequest = call.params["request"]
    request.url = base
    response: Response = call.params["self"].send(request, **call.params["kwargs"])
    return response


# A lane instance that refuses the connection: the same request goes to a base instance.
on_exit = exit_hook("status_code", _sent_to, _resend)

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
from instpy.runtime.governance import Entry, HttpFallback
from instpy.runtime.hooks.http import (
    admit_outbound,
    finish,
    mark_client,
    outbound_resource,
    outgoing_headers,
    reason,
    route,
    unmark_client,
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
    request: PreparedRequest = call.params["request"]
    request.url = route(request.url or "")
    for name, value in outgoing_headers():
        request.headers[name] = value
    outcome = admit_outbound(outbound_resource(request.method or "GET", request.url))
    if isinstance(outcome, Entry):
        call.data["entry"] = outcome
        call.data["client"] = mark_client()  # urllib3 underneath must not count it again
        return
    call.skip(_answer(request, outcome))


def on_exit(call: Call) -> None:
    token = call.data.get("client")
    if token is not None:
        unmark_client(token)
    response = call.return_value
    finish(call.data.get("entry"), call.exception, getattr(response, "status_code", None))

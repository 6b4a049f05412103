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
from instpy.runtime.hooks.http import (
    Admission,
    admit_outbound,
    connection_refused,
    finish,
    mark_client,
    nested_client,
    outbound_resource,
    outgoing_headers,
    reason,
    route,
    route_fallback,
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
    if nested_client():
        return  # our own retry on a base instance (see on_exit): governed by the outer call
    request: PreparedRequest = call.params["request"]
    # The resource names the destination service; routing then picks one of its instances.
    resource = outbound_resource(request.method or "GET", request.url or "")
    request.url = route(request.url or "")
    for name, value in outgoing_headers():
        request.headers[name] = value
    outcome = admit_outbound(resource)
    if isinstance(outcome, Admission):
        call.data["entry"] = outcome
        call.data["client"] = mark_client()  # urllib3 underneath must not count it again
        return
    call.skip(_answer(request, outcome))


def _retry_on_base(call: Call) -> None:
    """A lane instance refused the connection: send the same request to a base instance."""
    request: PreparedRequest = call.params["request"]
    base = route_fallback(request.url or "")
    if base is None:
        return
    request.url = base
    try:
        call.return_value = call.params["self"].send(request, **call.params["kwargs"])
        call.exception = None
    except Exception as exc:  # the base's own failure is the call's outcome
        call.exception = exc


def on_exit(call: Call) -> None:
    entry = call.data.get("entry")
    if entry is None:
        return
    if call.exception is not None and connection_refused(call.exception):
        _retry_on_base(call)  # still marked as a client call: not governed twice
    unmark_client(call.data["client"])
    response = call.return_value
    finish(entry, call.exception, getattr(response, "status_code", None))

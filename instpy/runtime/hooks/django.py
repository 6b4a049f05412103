"""Django inbound governance, sync and async views (Django >=4.2,<6).

Choke point: `django.core.handlers.base:BaseHandler._get_response` (WSGI, and async views under
WSGI) and its twin `_get_response_async` (ASGI, sync views under ASGI too). Every request Django
routes passes exactly one of them, once, and what they return is the response. They are the
innermost layer of the middleware onion: request middleware (`process_request`, the `__call__`
half before `get_response`) has already run, and response middleware (`process_response`, the
half after) still runs on what we return, fallbacks included (security headers, sessions,
CommonMiddleware). View middleware (`process_view`, e.g. CSRF), the view, exception middleware
and template rendering do not run for a blocked request.

Routing is the first thing those methods do (`resolve_request`), so their enter hook cannot see
the route template yet. It therefore resolves the request itself, through Django's own
`resolve_request` (urlconf overrides and `request.resolver_match` exactly as Django does them),
and governs `METHOD /route` with `ResolverMatch.route` — `polls/<int:question_id>/` becomes
`GET /polls/<int:question_id>/` (a leading `^` of a `re_path` is dropped). A third, tiny hook on
`resolve_request` hands the body that same match instead of resolving a second time. A path that
does not resolve (404) is not governed: the body resolves it again and Django answers as usual.
`Http404`, `PermissionDenied` and bad requests raised by a view are client errors, not failures
of the service: they do not count toward a circuit breaker.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django.core.exceptions import (  # type: ignore[import-untyped]
    BadRequest,
    PermissionDenied,
    SuspiciousOperation,
)
from django.http import Http404, HttpRequest, HttpResponse  # type: ignore[import-untyped]

from instpy.runtime.call import Call
from instpy.runtime.governance import HttpFallback
from instpy.runtime.hooks.http import Admission, admit_inbound, admit_inbound_async, finish

DISTRIBUTION = "django"
VERSIONS = ">=4.2,<6"

# The request whose resolver_match the enter hook has just computed: the body's own
# `resolve_request` call (its first statement) takes it instead of resolving again.
_RESOLVED: ContextVar[HttpRequest | None] = ContextVar("instpy_django_resolved", default=None)

_CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)


def _resource(handler: Any, request: HttpRequest) -> str | None:
    try:
        match = handler.resolve_request(request)
    except Exception:  # 404 or a broken urlconf: the body raises it again
        return None
    _RESOLVED.set(request)
    route = match.route or ""
    if route.startswith("^"):
        route = route[1:]
    return f"{request.method} {route if route.startswith('/') else '/' + route}"


def _lookup(source: str, name: str) -> object:
    # Called during admission, while _RESOLVED still holds the request being admitted.
    request = _RESOLVED.get()
    if request is None:
        return None
    if source == "query":
        return request.GET.get(name)
    if source == "header":
        return request.headers.get(name)
    if source == "cookie":
        return request.COOKIES.get(name)
    if source == "path":
        match = request.resolver_match
        return None if match is None else match.kwargs.get(name)
    return None


def _answer(fallback: HttpFallback) -> HttpResponse:
    response = HttpResponse(fallback.body, status=fallback.status)
    for name, value in fallback.response_headers():
        response[name] = value
    return response


def on_enter(call: Call) -> None:
    request: HttpRequest = call.params["request"]
    resource = _resource(call.params["self"], request)
    if resource is None:
        return
    outcome = admit_inbound(resource, _lookup, request.headers.get)
    if isinstance(outcome, Admission):
        call.data["entry"] = outcome
        return
    _RESOLVED.set(None)
    call.skip(_answer(outcome))


async def on_enter_async(call: Call) -> None:
    request: HttpRequest = call.params["request"]
    resource = _resource(call.params["self"], request)
    if resource is None:
        return
    outcome = await admit_inbound_async(resource, _lookup, request.headers.get)
    if isinstance(outcome, Admission):
        call.data["entry"] = outcome
        return
    _RESOLVED.set(None)
    call.skip(_answer(outcome))


def on_exit(call: Call) -> None:
    exception = call.exception
    if isinstance(exception, _CLIENT_ERRORS):
        finish(call.data.get("entry"), None, 400)
        return
    finish(call.data.get("entry"), exception, getattr(call.return_value, "status_code", None))


def on_resolve(call: Call) -> None:
    """`BaseHandler.resolve_request`: the match the enter hook computed for this request."""
    pending = _RESOLVED.get()
    if pending is not None and pending is call.params["request"]:
        _RESOLVED.set(None)
        call.skip(pending.resolver_match)

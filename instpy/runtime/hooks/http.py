"""What every HTTP and gRPC hook shares: resource names, admission, propagation, routing.

Every framework hook goes through `admit_inbound`, every client hook through `admit_outbound`,
`outgoing_headers` and `route`: so request-scoped features (full-link gray release: a lane tag
taken from the inbound request, carried on every outbound call, and outbound calls routed to the
lane's instances) live here once, not in each hook.

Resource names are a user interface (docs/architecture.md): inbound `METHOD route-template`
(gRPC `/package.Service/Method`), outbound `METHOD scheme://host[:port]/path` (no query string,
so one resource per endpoint of the dependency, not per request).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from http import HTTPStatus
from urllib.parse import urlsplit

from instpy.runtime.governance import Blocked, Entry, HttpFallback, engine

Lookup = Callable[[str, str], object]
HeaderGetter = Callable[[str], "str | None"]


def outbound_resource(method: str, url: str) -> str:
    """`GET http://service-b/greet1b` for `GET http://service-b/greet1b?x=1`."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{method.upper()} {parts.scheme}://{parts.netloc}{path}"


def is_error_status(status: int) -> bool:
    """A 5xx is a failure of the callee; 4xx are the caller's (Sentinel counts them as passes)."""
    return status >= 500


def reason(status: int) -> str:
    """The standard reason phrase, or an empty one for a code HTTP does not name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _admit(resource: str, traffic: str, lookup: Lookup | None) -> Entry | HttpFallback:
    result = engine().entry(resource, traffic, lookup)
    if isinstance(result, Blocked):
        return result.http_fallback()
    return result


async def _admit_async(resource: str, traffic: str, lookup: Lookup | None) -> Entry | HttpFallback:
    result = await engine().entry_async(resource, traffic, lookup)
    if isinstance(result, Blocked):
        return result.http_fallback()
    return result


def admit_inbound(
    resource: str, lookup: Lookup | None, header: HeaderGetter
) -> Entry | HttpFallback:
    """Govern one inbound request (sync servers): the Entry to exit afterwards, or the answer.

    `header(name)` reads a request header (case-insensitive); request-scoped state such as the
    lane tag is taken from it here.
    """
    return _admit(resource, "inbound", lookup)


async def admit_inbound_async(
    resource: str, lookup: Lookup | None, header: HeaderGetter
) -> Entry | HttpFallback:
    """`admit_inbound` for async servers: a throttled request waits with the loop's sleep."""
    return await _admit_async(resource, "inbound", lookup)


def admit_outbound(resource: str) -> Entry | HttpFallback:
    """Govern one outbound call (sync clients)."""
    return _admit(resource, "outbound", None)


async def admit_outbound_async(resource: str) -> Entry | HttpFallback:
    """`admit_outbound` for async clients."""
    return await _admit_async(resource, "outbound", None)


def outgoing_headers() -> list[tuple[str, str]]:
    """Headers every outbound call must carry for the request it is made on behalf of
    (the lane tag, as W3C `baggage` and `x-mse-tag`). Client hooks add them before sending."""
    return []


def route(url: str) -> str:
    """The URL an outbound call should really go to (a lane instance of the destination
    service, else its base instances); unchanged when no `services:` entry names its host."""
    return url


# Set while a governed client call is in progress in this context: a client built on another
# governed client (requests over urllib3, say) must count the call once, at the outer one.
_IN_CLIENT: ContextVar[bool] = ContextVar("instpy_in_client", default=False)


def nested_client() -> bool:
    """True inside a call an outer client hook already governs: the inner hook does nothing."""
    return _IN_CLIENT.get()


def mark_client() -> Token[bool]:
    """Mark the current context as inside a governed client call (the outer hook's on_enter)."""
    return _IN_CLIENT.set(True)


def unmark_client(token: Token[bool]) -> None:
    """Undo `mark_client` (the outer hook's on_exit)."""
    _IN_CLIENT.reset(token)


def finish(entry: Entry | None, exception: BaseException | None, status: int | None) -> None:
    """Record how the call ended: an exception, else the status code."""
    if entry is None:
        return
    if exception is not None:
        entry.exit(exception)
    else:
        entry.exit(status is not None and is_error_status(status))

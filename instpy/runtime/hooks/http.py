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

from instpy.runtime.governance import Blocked, Entry, HttpFallback, engine, engine_async
from instpy.runtime.lanes import context as lane_context
from instpy.runtime.lanes.router import base_url_for, route_url
from instpy.runtime.lanes.stats import LANE_STATS

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
    result = await (await engine_async()).entry_async(resource, traffic, lookup)
    if isinstance(result, Blocked):
        return result.http_fallback()
    return result


def enter_lane(lookup: Lookup | None, header: HeaderGetter) -> None:
    """Give the admitted request its lane tag: the one an upstream service sent, else the tag of
    the first lane it matches (this service is the first governed hop), else none (base)."""
    tag = lane_context.tag_from_headers(header)
    lanes = engine().config.lanes
    if tag is None and lanes.lanes:

        def read(source: str, name: str) -> object:
            if source == "header":
                return header(name)
            return lookup(source, name) if lookup is not None else None

        tag = lanes.tag_for(read)
    if tag is not None:
        LANE_STATS.count("instpy_lane_requests_total", lanes.lane_name(tag))
    lane_context.set_tag(tag)


def admit_inbound(
    resource: str, lookup: Lookup | None, header: HeaderGetter
) -> Entry | HttpFallback:
    """Govern one inbound request (sync servers): the Entry to exit afterwards, or the answer.

    `header(name)` reads a request header (case-insensitive); an admitted request takes its
    lane tag from it (or from the lanes it matches) for the rest of its handling.
    """
    outcome = _admit(resource, "inbound", lookup)
    if not isinstance(outcome, HttpFallback):
        enter_lane(lookup, header)
    return outcome


async def admit_inbound_async(
    resource: str, lookup: Lookup | None, header: HeaderGetter
) -> Entry | HttpFallback:
    """`admit_inbound` for async servers: a throttled request waits with the loop's sleep."""
    outcome = await _admit_async(resource, "inbound", lookup)
    if not isinstance(outcome, HttpFallback):
        enter_lane(lookup, header)
    return outcome


def admit_outbound(resource: str) -> Entry | HttpFallback:
    """Govern one outbound call (sync clients)."""
    return _admit(resource, "outbound", None)


async def admit_outbound_async(resource: str) -> Entry | HttpFallback:
    """`admit_outbound` for async clients."""
    return await _admit_async(resource, "outbound", None)


def outgoing_headers() -> list[tuple[str, str]]:
    """Headers every outbound call must carry for the request it is made on behalf of
    (the lane tag, as W3C `baggage` and `x-mse-tag`). Client hooks add them before sending."""
    return lane_context.headers_for(lane_context.current_tag())


def route(url: str) -> str:
    """The URL an outbound call should really go to (a lane instance of the destination
    service, else its base instances); unchanged when no `services:` entry names its host.
    Compute the resource name from the URL before routing: resources name services."""
    tag = lane_context.current_tag()
    config = engine().config
    lane = config.lanes.lane_name(tag) if tag is not None else None
    return route_url(url, tag, config.services, lane)


def route_fallback(url: str) -> str | None:
    """After a routed call could not connect: the base URL to retry on, when `url` went to a
    lane instance (the request never reached it, so a retry is safe); else None."""
    tag = lane_context.current_tag()
    if tag is None:
        return None
    config = engine().config
    return base_url_for(url, config.services, config.lanes.lane_name(tag))


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


def connection_refused(exc: BaseException) -> bool:
    """Whether `exc` (as any client wraps it) means the connection was refused: the request
    never reached the server, so sending it elsewhere is safe."""
    seen: list[object] = [exc]
    for _ in range(8):
        nxt: list[object] = []
        for e in seen:
            if isinstance(e, ConnectionRefusedError) or type(e).__name__ == "NewConnectionError":
                return True
            if isinstance(e, BaseException):
                nxt += [e.__cause__, e.__context__, getattr(e, "reason", None),
                        getattr(e, "os_error", None), *e.args[:1]]
        seen = [e for e in nxt if isinstance(e, BaseException)]
        if not seen:
            return False
    return False


def finish(entry: Entry | None, exception: BaseException | None, status: int | None) -> None:
    """Record how the call ended: an exception, else the status code."""
    if entry is None:
        return
    if exception is not None:
        entry.exit(exception)
    else:
        entry.exit(status is not None and is_error_status(status))

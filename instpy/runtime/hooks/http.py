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

from instpy.runtime.engine import Engine
from instpy.runtime.governance import Blocked, HttpFallback, Resource, engine, engine_async
from instpy.runtime.lanes import context as lane_context
from instpy.runtime.lanes.router import base_url_for, route_url
from instpy.runtime.lanes.rule import LaneTable
from instpy.runtime.lanes.stats import LANE_STATS
from instpy.runtime.resource import wait_turn, waiting

Lookup = Callable[[str, str], object]
HeaderGetter = Callable[[str], "str | None"]

# Handles kept per resource name and kind of traffic; past this many (outbound URLs can be
# unbounded) a handle is fetched from the engine per call instead of kept here.
MAX_HANDLES = 4096


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


# -- resource handles ----------------------------------------------------------------------
# A framework hook knows its route template, so it keeps the route's handle (`inbound` /
# `inbound_async`: two dict reads per request, no name formatted) and calls `enter`/`exit` on
# it; the handle follows rule swaps by itself.

# method -> route template -> handle; framework hooks read it directly on their hottest paths.
INBOUND: dict[str, dict[str, Resource]] = {}
_NAMED: dict[tuple[str, str], Resource] = {}  # (resource, traffic) -> handle
# The process engine's lanes, kept current by a subscription: hooks read `LANES[0]`.
LANES: list[LaneTable] = [LaneTable()]
_WATCHED: list[Engine] = []


def _watch(eng: Engine) -> Engine:
    """Keep `LANES` current for `eng` (once per engine) so a request reads one list slot
    instead of the engine's config."""
    if not _WATCHED or _WATCHED[0] is not eng:
        _WATCHED[:] = [eng]
        eng.subscribe(_on_swap)
        while True:  # a swap between the read and the store must not leave older lanes
            config = eng.config
            LANES[0] = config.lanes
            if eng.config is config:
                break
    return eng


def _on_swap(config: object) -> None:
    lanes = getattr(config, "lanes", None)
    if isinstance(lanes, LaneTable):
        LANES[0] = lanes


def _keep_inbound(eng: Engine, method: str, template: str) -> Resource:
    res = _watch(eng).resource(f"{method} {template}", "inbound")
    if sum(map(len, INBOUND.values())) < MAX_HANDLES:
        INBOUND.setdefault(method, {})[template] = res
    return res


def kept_inbound(method: str, template: str) -> Resource | None:
    """The kept handle of `METHOD template`, None before its first request."""
    by_template = INBOUND.get(method)
    return None if by_template is None else by_template.get(template)


def inbound(method: str, template: str) -> Resource:
    """The handle of the inbound resource `METHOD template` (sync servers)."""
    res = kept_inbound(method, template)
    return res if res is not None else _keep_inbound(engine(), method, template)


async def inbound_async(method: str, template: str) -> Resource:
    """`inbound` for async servers: the first request of a route may build the engine, which
    `engine_async` does off the event loop. Hooks look the kept handle up first (`kept_inbound`,
    or `INBOUND` itself on their hottest paths): no coroutine per request once it is kept."""
    res = kept_inbound(method, template)
    return res if res is not None else _keep_inbound(await engine_async(), method, template)


def named(eng: Engine, resource: str, traffic: str) -> Resource:
    """The handle of `resource` for hooks that know only its name (clients, method-less
    servers): kept here up to MAX_HANDLES names."""
    key = (resource, traffic)
    res = _NAMED.get(key)
    if res is None:
        res = _watch(eng).resource(resource, traffic)
        if len(_NAMED) < MAX_HANDLES:
            _NAMED[key] = res
    return res


def finish_token(res: Resource, token: object, exception: BaseException | None,
                 status: int | None) -> None:
    """Exit an admitted token: the exception if the call raised, else whether its status is
    a failure of the callee (5xx)."""
    res.exit(token, exception if exception is not None
             else status is not None and status >= 500)


class Admission:
    """An admitted call for hooks that keep one object from enter to exit: `exit(error)`
    once (later calls are ignored), as the engine's `Entry`."""

    __slots__ = ("res", "token")

    def __init__(self, res: Resource | None, token: object) -> None:
        self.res = res
        self.token = token

    def exit(self, error: object = None) -> None:
        res = self.res
        if res is None:
            return
        self.res = None
        res.exit(self.token, error)


# The admission of a call governance has nothing to do for: exiting it records nothing.
IDLE_ADMISSION = Admission(None, None)


def admitted(res: Resource, token: object) -> Admission | Blocked:
    """`token` from `res.enter` as what the name-based `admit_*` helpers return."""
    if token.__class__ is Blocked:
        return token
    return Admission(res, token)


def admit_named(resource: str, traffic: str, lookup: Lookup | None) -> Admission | Blocked:
    """Govern one call of `resource` (sync): an Admission to exit, or Blocked."""
    res = named(engine(), resource, traffic)
    if not res.active:
        return IDLE_ADMISSION
    return admitted(res, res.enter(lookup))


async def admit_named_async(resource: str, traffic: str,
                            lookup: Lookup | None) -> Admission | Blocked:
    """`admit_named` for coroutines: a throttled call waits with the loop's sleep."""
    res = named(await engine_async(), resource, traffic)
    if not res.active:
        return IDLE_ADMISSION
    token = res.enter_nowait(lookup)
    if waiting(token):
        await wait_turn(token)
    return admitted(res, token)


def _admit(resource: str, traffic: str, lookup: Lookup | None) -> Admission | HttpFallback:
    result = admit_named(resource, traffic, lookup)
    if result.__class__ is Blocked:
        return result.http_fallback()
    return result  # type: ignore[return-value]


async def _admit_async(resource: str, traffic: str,
                       lookup: Lookup | None) -> Admission | HttpFallback:
    result = await admit_named_async(resource, traffic, lookup)
    if result.__class__ is Blocked:
        return result.http_fallback()
    return result  # type: ignore[return-value]


# -- lanes ---------------------------------------------------------------------------------


def lane_in(tag: str | None, lookup: Lookup | None, header: HeaderGetter) -> None:
    """Give the admitted request its lane tag: `tag`, the one an upstream service sent, else
    the tag of the first lane it matches (this service is the first governed hop), else none
    (base). `header` and `lookup` are read only when lanes are configured."""
    lanes = LANES[0]
    if tag is None and lanes.lanes:

        def read(source: str, name: str) -> object:
            if source == "header":
                return header(name)
            return lookup(source, name) if lookup is not None else None

        tag = lanes.tag_for(read)
    if tag is not None:
        LANE_STATS.count("instpy_lane_requests_total", lanes.lane_name(tag))
    lane_context.set_tag(tag)


def enter_lane(lookup: Lookup | None, header: HeaderGetter) -> None:
    """`lane_in` for hooks that read headers through a getter."""
    if not _WATCHED:
        _watch(engine())
    lane_in(lane_context.tag_from_headers(header), lookup, header)


def admit_inbound(
    resource: str, lookup: Lookup | None, header: HeaderGetter
) -> Admission | HttpFallback:
    """Govern one inbound request (sync servers): the Admission to exit afterwards, or the
    answer. `header(name)` reads a request header (case-insensitive); an admitted request takes
    its lane tag from it (or from the lanes it matches) for the rest of its handling.
    """
    outcome = _admit(resource, "inbound", lookup)
    if outcome.__class__ is Admission:
        enter_lane(lookup, header)
    return outcome


async def admit_inbound_async(
    resource: str, lookup: Lookup | None, header: HeaderGetter
) -> Admission | HttpFallback:
    """`admit_inbound` for async servers: a throttled request waits with the loop's sleep."""
    outcome = await _admit_async(resource, "inbound", lookup)
    if outcome.__class__ is Admission:
        enter_lane(lookup, header)
    return outcome


def admit_outbound(resource: str) -> Admission | HttpFallback:
    """Govern one outbound call (sync clients)."""
    return _admit(resource, "outbound", None)


async def admit_outbound_async(resource: str) -> Admission | HttpFallback:
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


def finish(entry: Admission | None, exception: BaseException | None, status: int | None) -> None:
    """Record how the call ended: an exception, else the status code."""
    if entry is None:
        return
    if exception is not None:
        entry.exit(exception)
    else:
        entry.exit(status is not None and is_error_status(status))

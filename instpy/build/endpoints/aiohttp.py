"""aiohttp: route definitions (`web.get(...)` in `add_routes([...])`), `@routes.get(...)` on a
`RouteTableDef`, `app.router.add_get/add_route/add_view`, and `add_subapp(prefix, app)`."""

from __future__ import annotations

from instpy.build.endpoints.calls import arg
from instpy.build.endpoints.model import ANY_METHOD, HTTP_VERBS
from instpy.build.endpoints.scan import Site
from instpy.build.endpoints.walk import Recognisers, Walk

# Every form comes in these kinds: a verb (aiohttp has no TRACE shortcut), `route` (the method
# is the first argument) and `view` (a class answering any method).
_KINDS = (*HTTP_VERBS[:7], "route", "view")
_MODULES = ("aiohttp.web", "aiohttp.web_routedef")


def _route(w: Walk, at: Site, kind: str, handler: str | None) -> None:
    """One route of `kind`; a decorator passes the decorated function's name, a call has the
    handler after the path."""
    first = 1 if kind == "route" else 0
    if kind == "route":
        method = w.s.string(at.mod, arg(at.call, 0, "method"))
        methods = [method.upper()] if method else None  # aiohttp upper-cases it too
    else:
        methods = [ANY_METHOD] if kind == "view" else [kind.upper()]
    view = handler if handler is not None else arg(at.call, first + 1, "handler")
    w.s.add(at, methods, arg(at.call, first, "path"), view)


def _decorator(w: Walk, at: Site, handler: str) -> None:
    if at.name in _KINDS:
        _route(w, at, at.name, handler)


def _definition(w: Walk, at: Site) -> None:
    _route(w, at, at.name, None)


def _router_add(w: Walk, at: Site) -> None:
    _route(w, at, at.name.removeprefix("add_"), None)


def _add_routes(w: Walk, at: Site) -> None:
    if at.call.args:
        w.route_list(at.mod, at.call.args[0], at.cid)


def _add_subapp(w: Walk, at: Site) -> None:
    w.mount(at, "prefix", "subapp", "add_subapp() prefix")


FAMILY = Recognisers(
    constructors={
        "aiohttp.web.Application": ("aiohttp", None),
        "aiohttp.web_app.Application": ("aiohttp", None),
        "aiohttp.web.RouteTableDef": ("aiohttp", None),
        "aiohttp.web_routedef.RouteTableDef": ("aiohttp", None),
    },
    decorators={"aiohttp": _decorator},
    method_calls={
        **{("aiohttp", f"add_{kind}"): _router_add for kind in _KINDS},
        ("aiohttp", "add_routes"): _add_routes,
        ("aiohttp", "add_subapp"): _add_subapp,
    },
    route_calls={f"{module}.{kind}": _definition for module in _MODULES for kind in _KINDS},
    unresolved_calls=frozenset({"add_subapp"}),
)

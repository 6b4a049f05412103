"""aiohttp: route definitions (`web.get(...)` in `add_routes([...])`), `@routes.get(...)` on a
`RouteTableDef`, `app.router.add_get/add_route/add_view`, and `add_subapp(prefix, app)`.

A class-based view (a `web.View` subclass, registered with `@routes.view(path)` on the class,
`add_view`, `web.view` or a `*` route) is one endpoint per method it defines: aiohttp's route
takes any method, the view answers those it has (`get`, `post`, ...; others 405), and the
runtime names each request `METHOD template` with the request's method (hooks/aiohttp_server).
"""

from __future__ import annotations

import ast

from instpy.build.endpoints.calls import arg
from instpy.build.endpoints.model import ANY_METHOD, HTTP_VERBS
from instpy.build.endpoints.modules import Module
from instpy.build.endpoints.scan import Site
from instpy.build.endpoints.walk import Recognisers, Walk

# Every form comes in these kinds: a verb (aiohttp has no TRACE shortcut), `route` (the method
# is the first argument) and `view` (a class answering any method).
_VERBS = HTTP_VERBS[:7]
_KINDS = (*_VERBS, "route", "view")
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
    if methods == [ANY_METHOD]:
        methods = _view_methods(w, at.mod, view)
    w.s.add(at, methods, arg(at.call, first, "path"), view)


def _view_methods(w: Walk, mod: Module, view: ast.expr | str | None) -> list[str]:
    """What a route for any method answers: a view class the tree defines, the methods it
    has, upper-cased as aiohttp matches them (none: no endpoint); any other handler, any."""
    verbs = w.s.class_verbs(mod, view, _VERBS)
    return [ANY_METHOD] if verbs is None else verbs


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
    class_decorators={"aiohttp": _decorator},
    method_calls={
        **{("aiohttp", f"add_{kind}"): _router_add for kind in _KINDS},
        ("aiohttp", "add_routes"): _add_routes,
        ("aiohttp", "add_subapp"): _add_subapp,
    },
    route_calls={f"{module}.{kind}": _definition for module in _MODULES for kind in _KINDS},
    unresolved_calls=frozenset({"add_subapp"}),
)

"""Starlette (and FastAPI, which is a Starlette application): `Route` and `Mount` in route
lists, `add_route`, `mount`, and the `@app.route` decorator."""

from __future__ import annotations

import ast

from instpy.build.endpoints.calls import arg, kwarg
from instpy.build.endpoints.model import ANY_METHOD, HTTP_VERBS
from instpy.build.endpoints.modules import Module
from instpy.build.endpoints.scan import Site
from instpy.build.endpoints.walk import Recognisers, Walk, verb_decorators


def _route(w: Walk, at: Site) -> None:
    endpoint = arg(at.call, 1, "endpoint")
    methods = w.s.methods(at.mod, kwarg(at.call, "methods"), _default_methods(w, at.mod, endpoint))
    w.s.add(at, methods, arg(at.call, 0, "path"), endpoint)


def _default_methods(w: Walk, mod: Module, endpoint: ast.expr | None) -> list[str]:
    """Starlette's default: a function answers GET; an HTTPEndpoint the verbs it defines."""
    verbs = w.s.class_verbs(mod, endpoint, HTTP_VERBS)
    return ["GET"] if verbs is None else verbs or [ANY_METHOD]


def _mount_entry(w: Walk, at: Site) -> None:
    w.mount(at, "path", "app", "Mount path")


def _not_http(w: Walk, at: Site) -> None:
    """WebSocketRoute and Host: not HTTP endpoints we govern, but route-list entries all the
    same (so a list of them is a Starlette route list, and no warning is due)."""


def _add_route(w: Walk, at: Site) -> None:
    w.s.add_listed(at, arg(at.call, 0, "path"), arg(at.call, 1, "endpoint"))


def _mount_call(w: Walk, at: Site) -> None:
    w.mount(at, "path", "app", "mount() prefix")


FAMILY = Recognisers(
    constructors={
        "starlette.applications.Starlette": ("starlette", None),
        "starlette.routing.Router": ("starlette", None),
    },
    decorators={"starlette": verb_decorators({"route": None})},
    method_calls={
        (framework, name): recognise
        for framework in ("starlette", "fastapi")
        for name, recognise in (("add_route", _add_route), ("mount", _mount_call))
    },
    route_calls={
        "starlette.routing.Route": _route,
        "starlette.routing.Mount": _mount_entry,
        "starlette.routing.WebSocketRoute": _not_http,
        "starlette.routing.Host": _not_http,
    },
)

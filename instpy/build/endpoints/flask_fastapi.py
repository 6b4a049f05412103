"""Flask and FastAPI: apps, blueprints and routers, their route decorators, `add_url_rule` and
`add_api_route`, and the registrations that nest one under another with a prefix.

Flask's `register_blueprint(url_prefix=)` replaces the Blueprint's own prefix (as Flask does);
FastAPI's `include_router(prefix=)` is put in front of the router's. FastAPI's `mount` and
`add_route` come from Starlette and are recognised there.
"""

from __future__ import annotations

from instpy.build.endpoints.calls import arg
from instpy.build.endpoints.model import HTTP_VERBS
from instpy.build.endpoints.scan import Site
from instpy.build.endpoints.walk import Recognisers, Walk, verb_decorators


def _add_url_rule(w: Walk, at: Site) -> None:
    w.s.add_listed(at, arg(at.call, 0, "rule"), arg(at.call, 2, "view_func"))


def _add_api_route(w: Walk, at: Site) -> None:
    w.s.add_listed(at, arg(at.call, 0, "path"), arg(at.call, 1, "endpoint"))


def _register_blueprint(w: Walk, at: Site) -> None:
    prefix = w.s.optional_string(at.mod, at.call, "url_prefix", "prefix ignored")
    w.s.register(at, arg(at.call, 0, "blueprint"), prefix)


def _include_router(w: Walk, at: Site) -> None:
    prefix = w.s.optional_string(at.mod, at.call, "prefix", "prefix ignored")
    w.s.register(at, arg(at.call, 0, "router"), prefix or "")


FAMILY = Recognisers(
    constructors={
        "flask.Flask": ("flask", None),
        "flask.app.Flask": ("flask", None),
        "flask.Blueprint": ("flask", "url_prefix"),
        "flask.blueprints.Blueprint": ("flask", "url_prefix"),
        "fastapi.FastAPI": ("fastapi", None),
        "fastapi.applications.FastAPI": ("fastapi", None),
        "fastapi.APIRouter": ("fastapi", "prefix"),
        "fastapi.routing.APIRouter": ("fastapi", "prefix"),
    },
    decorators={
        # Flask has shortcuts for five verbs only; FastAPI for all eight.
        "flask": verb_decorators({"route": None, **{v: [v.upper()] for v in HTTP_VERBS[:5]}}),
        "fastapi": verb_decorators({"api_route": None, **{v: [v.upper()] for v in HTTP_VERBS}}),
    },
    method_calls={
        ("flask", "add_url_rule"): _add_url_rule,
        ("flask", "register_blueprint"): _register_blueprint,
        ("fastapi", "add_api_route"): _add_api_route,
        ("fastapi", "include_router"): _include_router,
    },
    unresolved_calls=frozenset(
        {"add_url_rule", "register_blueprint", "include_router", "add_api_route"}
    ),
)

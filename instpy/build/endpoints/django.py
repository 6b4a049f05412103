"""Django: `urlpatterns` with `path()`, `re_path()` and `url()`, and `include()` of another
URLconf in the tree, of a pattern list, or of a `(patterns, app_name)` pair."""

from __future__ import annotations

import ast

from instpy.build.endpoints.calls import arg
from instpy.build.endpoints.model import ANY_METHOD
from instpy.build.endpoints.scan import Site
from instpy.build.endpoints.walk import Recognisers, Walk

_INCLUDE = {"django.urls.include", "django.urls.conf.include", "django.conf.urls.include"}


def _path(w: Walk, at: Site) -> None:
    route = _route(w, at)
    if route is not None:
        _pattern(w, at, route)


def _re_path(w: Walk, at: Site) -> None:
    route = _route(w, at)
    if route is not None:
        # Regex pieces are concatenated as Django does; an anchor only means something at the
        # start of the whole pattern, so it is dropped from each piece.
        _pattern(w, at, route.removeprefix("^"))


def _route(w: Walk, at: Site) -> str | None:
    route = w.s.string(at.mod, arg(at.call, 0, "route"))
    if route is None:
        w.s.warn(at.mod, at.call, "URL pattern is not a string literal; skipped")
    return route


def _pattern(w: Walk, at: Site, piece: str) -> None:
    view = arg(at.call, 1, "view")
    if isinstance(view, ast.Call) and w.s.callee(at.mod, view) in _INCLUDE:
        _include(w, Site(at.mod, view, at.cid, at.framework, "include"), piece)
    elif isinstance(view, ast.Attribute) and view.attr == "urls":
        # `admin.site.urls`, `router.urls`: a URLconf built at run time.
        w.s.warn(at.mod, at.call, f"{ast.unparse(view)} is a URLconf built at run time; "
                 "its routes are skipped")  # fmt: skip
    else:
        w.s.route(at.mod, at.call, at.cid, "django", [ANY_METHOD], piece, view)


def _include(w: Walk, at: Site, piece: str) -> None:
    """`at` is the `include(...)` call; what it includes goes under `piece`."""
    mod, target = at.mod, arg(at.call, 0, "arg")
    if isinstance(target, ast.Tuple) and target.elts:
        target = target.elts[0]  # include((patterns, app_name))
    if isinstance(target, (ast.List, ast.Tuple)):
        w.route_list(mod, target, w.s.mounted(at, piece))
        return
    dotted = w.s.string(mod, target) if target is not None else None
    if dotted is None and target is not None:
        dotted = w.s.qualname(mod, target)
        local = w.s.resolve(mod, target)
        if local is not None:
            w.s.link(at.cid, local, piece)
            return
    target_mod = w.s.find_module(dotted) if dotted else None
    found = target_mod.containers.get("urlpatterns") if target_mod else None
    if found is None:
        what = repr(dotted) if dotted else ast.unparse(target) if target is not None else "nothing"
        w.s.warn(mod, at.call, f"include({what}): no urlpatterns found for it in the scanned "
                 "tree (dynamic or outside it); skipped")  # fmt: skip
        return
    w.s.link(at.cid, found, piece)


FAMILY = Recognisers(
    route_lists={"urlpatterns": "django"},
    route_calls={
        "django.urls.path": _path,
        "django.urls.conf.path": _path,
        "django.urls.re_path": _re_path,
        "django.urls.conf.re_path": _re_path,
        "django.conf.urls.url": _re_path,
    },
)

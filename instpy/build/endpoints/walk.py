"""Passes 2 and 3 over a `Scan`: the containers of the whole tree first, then the routes and
edges, each syntax form handed to the recogniser a `Recognisers` table names for it.

Which recogniser runs is decided by where the form stands: a decorator or a method call by the
framework of the container it is called on (`@bp.get`, `app.include_router`), an entry of a
route list by its callee's qualified name (`starlette.routing.Mount`, `django.urls.path`), so
framework families stay apart and a new one is a new table, not a new branch here.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from instpy.build.endpoints.calls import arg, kwarg
from instpy.build.endpoints.model import HTTP_VERBS
from instpy.build.endpoints.modules import Module
from instpy.build.endpoints.scan import Scan, Site

Recogniser = Callable[["Walk", Site], None]
DecoratorRecogniser = Callable[["Walk", Site, str], None]  # str: the decorated def's name
ClassRecogniser = Callable[[Scan, Module, ast.ClassDef], None]
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Recognisers:
    """What a framework family recognises; `merge` joins families into one table."""

    # callee's qualified name -> (framework, the keyword that gives its own prefix, if any)
    constructors: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    # a list assigned to this name is a route list of this framework even when it holds no
    # route call (yet): Django's `urlpatterns = []` filled by `+=`
    route_lists: Mapping[str, str] = field(default_factory=dict)
    # container framework -> `@container.attr(...)` on a function
    decorators: Mapping[str, DecoratorRecogniser] = field(default_factory=dict)
    # container framework -> `@container.attr(...)` on a class (aiohttp's `@routes.view`)
    class_decorators: Mapping[str, DecoratorRecogniser] = field(default_factory=dict)
    # (container framework, attribute) -> `container.attr(...)`
    method_calls: Mapping[tuple[str, str], Recogniser] = field(default_factory=dict)
    # callee's qualified name -> an entry of a route list (`Route(...)`, `path(...)`)
    route_calls: Mapping[str, Recogniser] = field(default_factory=dict)
    classes: tuple[ClassRecogniser, ...] = ()
    # attributes whose call on an unresolvable object is worth a warning
    unresolved_calls: frozenset[str] = frozenset()

    @staticmethod
    def merge(*families: Recognisers) -> Recognisers:
        return Recognisers(
            constructors=_union(f.constructors for f in families),
            route_lists=_union(f.route_lists for f in families),
            decorators=_union(f.decorators for f in families),
            class_decorators=_union(f.class_decorators for f in families),
            method_calls=_union(f.method_calls for f in families),
            route_calls=_union(f.route_calls for f in families),
            classes=tuple(c for f in families for c in f.classes),
            unresolved_calls=frozenset().union(*(f.unresolved_calls for f in families)),
        )


class Walk:
    """Walks the scanned modules with one table of recognisers; recognisers call back into it
    for what nests (`route_list`, `app`, `mount`)."""

    def __init__(self, scan: Scan, table: Recognisers) -> None:
        self.s = scan
        self.t = table

    # ---- pass 2: containers

    def containers(self) -> None:
        for mod in self.s.modules:
            for target, value in _assignments(mod):
                self._define(mod, target, value)
        for mod in self.s.modules:  # aliases (`router = app.router`, `api = app`) see all
            for target, value in _assignments(mod):
                if target not in mod.containers and isinstance(value, (ast.Name, ast.Attribute)):
                    cid = self.s.resolve(mod, value)
                    if cid:
                        mod.containers[target] = cid

    def _define(self, mod: Module, target: str, value: ast.expr) -> None:
        cid = f"{mod.rel}:{target}"
        if isinstance(value, ast.Call):
            made = self.t.constructors.get(self.s.callee(mod, value))
            if made is not None:
                kind, prefix_kw = made
                prefix = (
                    self.s.optional_string(mod, value, prefix_kw, "ignored") if prefix_kw else None
                )
                mod.containers[target] = self.s.container(cid, kind, prefix or "")
            return
        listed = self._route_list_framework(mod, value)
        if listed is None and mod.imports_web():
            listed = self.t.route_lists.get(target)
        if listed is not None:
            mod.containers[target] = self.s.container(cid, listed)

    def _route_list_framework(self, mod: Module, value: ast.expr) -> str | None:
        if not isinstance(value, (ast.List, ast.Tuple, ast.BinOp)):
            return None
        for node in ast.walk(value):
            if isinstance(node, ast.Call):
                q = self.s.callee(mod, node)
                if q in self.t.route_calls:
                    return q.split(".")[0]
        return None

    # ---- pass 3: routes and edges

    def routes(self) -> None:
        for mod in self.s.modules:
            for node in ast.walk(mod.tree):
                if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                    self._assignment(mod, node)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for dec in node.decorator_list:
                        self._decorator(mod, node.name, dec, self.t.decorators)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    self._method_call(mod, node, node.func)
                elif isinstance(node, ast.ClassDef):
                    for dec in node.decorator_list:
                        self._decorator(mod, node.name, dec, self.t.class_decorators)
                    for recognise in self.t.classes:
                        recognise(self.s, mod, node)
            self._unlisted(mod)

    def _unlisted(self, mod: Module) -> None:
        # Route calls in no known list (a factory's `return Starlette(routes=[...])`, say):
        # record them without a prefix rather than lose them. Breadth-first, so a Mount is
        # visited before the routes inside it.
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Call) and id(node) not in self.s.visited:
                q = self.s.callee(mod, node)
                if q in self.t.route_calls:
                    root = self.s.container(f"{mod.rel}:<unnamed>", q.split(".")[0])
                    self.route_list(mod, node, root)

    def _assignment(self, mod: Module, node: ast.Assign | ast.AugAssign | ast.AnnAssign) -> None:
        if node.value is None:
            return
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            if not isinstance(t, ast.Name) or t.id not in mod.containers:
                continue
            cid = mod.containers[t.id]
            if not cid.startswith(f"{mod.rel}:"):
                continue  # an alias of another module's container: its own module visits it
            if isinstance(node.value, (ast.List, ast.Tuple, ast.BinOp)):
                self.route_list(mod, node.value, cid)
            else:
                routes = self._constructed_routes(mod, node.value)
                if routes is not None:
                    self.route_list(mod, routes, cid)

    def _decorator(self, mod: Module, name: str, dec: ast.expr,
                   table: Mapping[str, DecoratorRecogniser]) -> None:
        """`dec` on the function or class `name`, recognised by the `table` of its kind."""
        if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)):
            return
        attr = dec.func.attr
        cid = self.s.resolve(mod, dec.func.value)
        if cid is None:
            first = self.s.string(mod, dec.args[0]) if dec.args else None
            if attr in ("route", "api_route") or (
                attr in HTTP_VERBS and first is not None and first.startswith("/")
            ):
                self.s.warn_unresolved(mod, dec, f"route decorator @{ast.unparse(dec.func)}(...): "
                                       "its app, router or blueprint")  # fmt: skip
            return
        framework = self.s.containers[cid].framework
        recognise = table.get(framework)
        if recognise is not None:
            recognise(self, Site(mod, dec, cid, framework, attr), name)

    def _method_call(self, mod: Module, call: ast.Call, func: ast.Attribute) -> None:
        cid = self.s.resolve(mod, func.value)
        if cid is None:
            if func.attr in self.t.unresolved_calls:
                self.s.warn_unresolved(mod, call, f"{ast.unparse(func)}(...): the app or router")
            return
        framework = self.s.containers[cid].framework
        recognise = self.t.method_calls.get((framework, func.attr))
        if recognise is not None:
            recognise(self, Site(mod, call, cid, framework, func.attr))

    # ---- what nests: route lists, mounted apps

    def route_list(self, mod: Module, expr: ast.expr, cid: str) -> None:
        """The routes of a list expression (Starlette, Django, aiohttp route definitions) into
        container `cid`; a list variable from elsewhere becomes an edge to its container."""
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            for elt in expr.elts:
                self.route_list(mod, elt, cid)
        elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            self.route_list(mod, expr.left, cid)
            self.route_list(mod, expr.right, cid)
        elif isinstance(expr, ast.Starred):
            self.route_list(mod, expr.value, cid)
        elif isinstance(expr, ast.Call) and (q := self.s.callee(mod, expr)) in self.t.route_calls:
            self.s.visited.add(id(expr))
            at = Site(mod, expr, cid, q.split(".")[0], q.rsplit(".", 1)[1])
            self.t.route_calls[q](self, at)
        elif isinstance(expr, (ast.Name, ast.Attribute)):
            if not self._link_named(mod, expr, cid):
                self.s.warn(mod, expr, f"routes come from {ast.unparse(expr)!r}, which is not a "
                            "statically visible route list; skipped")  # fmt: skip
        else:
            self.s.warn(mod, expr, f"route entry {ast.unparse(expr)[:60]!r} cannot be read "
                        "statically; skipped")  # fmt: skip

    def app(self, mod: Module, expr: ast.expr, cid: str) -> None:
        """A mounted application: built right here with `routes=`, or a container elsewhere."""
        routes = self._constructed_routes(mod, expr)
        if routes is not None:
            self.route_list(mod, routes, cid)
            return
        if not self._link_named(mod, expr, cid):
            self.s.warn(mod, expr, f"mounted app {ast.unparse(expr)[:60]!r} cannot be resolved "
                        "statically; skipped")  # fmt: skip

    def mount(self, at: Site, path_kw: str, app_kw: str, what: str) -> None:
        """Routes under a path prefix (Starlette's `Mount` and `mount()`, aiohttp's
        `add_subapp`): from `routes=`, else from the application argument `app_kw`."""
        prefix = self.s.string(at.mod, arg(at.call, 0, path_kw))
        if prefix is None:
            self.s.warn(at.mod, at.call, f"{what} is not a string literal; skipped")
            return
        routes, app = kwarg(at.call, "routes"), arg(at.call, 1, app_kw)
        if routes is not None:
            self.route_list(at.mod, routes, self.s.mounted(at, prefix))
        elif app is not None:
            self.app(at.mod, app, self.s.mounted(at, prefix))

    def _link_named(self, mod: Module, expr: ast.expr, cid: str) -> bool:
        """An edge from `cid` to the container `expr` names; False if it names none we know."""
        target = self.s.resolve(mod, expr)
        if target is not None and target != cid:
            self.s.link(cid, target, "")
        return target is not None

    def _constructed_routes(self, mod: Module, expr: ast.expr) -> ast.expr | None:
        """`routes=` of an application built in place (`Starlette(routes=[...])`)."""
        if isinstance(expr, ast.Call) and self.s.callee(mod, expr) in self.t.constructors:
            return kwarg(expr, "routes")
        return None


def verb_decorators(verbs: Mapping[str, list[str] | None]) -> DecoratorRecogniser:
    """`@container.<name>(path, ...)` where `verbs` maps each route decorator to its methods,
    or to None where `methods=[...]` gives them; other decorators (`errorhandler`,
    `websocket`, middleware) are not routes."""

    def recognise(w: Walk, at: Site, handler: str) -> None:
        if at.name not in verbs:
            return
        path = arg(at.call, 0, "rule") or arg(at.call, 0, "path")
        fixed = verbs[at.name]
        if fixed is None:
            w.s.add_listed(at, path, handler)
        else:
            w.s.add(at, fixed, path, handler)

    return recognise


def _union(tables: Iterable[Mapping[K, V]]) -> dict[K, V]:
    """One table from several; two families claiming the same form is a mistake, not a choice."""
    out: dict[K, V] = {}
    for table in tables:
        for key, value in table.items():
            if key in out:
                raise ValueError(f"endpoint recognisers: {key!r} is claimed twice")
            out[key] = value
    return out


def _assignments(mod: Module) -> Iterator[tuple[str, ast.expr]]:
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    yield t.id, node.value
        elif (
            isinstance(node, ast.AnnAssign)
            and node.value is not None
            and isinstance(node.target, ast.Name)
        ):
            yield node.target.id, node.value

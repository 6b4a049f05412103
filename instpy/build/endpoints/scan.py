"""Whole-tree scan state: modules, the containers of routes and the edges between them, the
routes found, and the name resolution every recogniser shares."""

from __future__ import annotations

import ast
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from instpy.build.endpoints.calls import kwarg
from instpy.build.endpoints.model import ScanWarning
from instpy.build.endpoints.modules import Module, iter_files, load_module
from instpy.build.endpoints.proto import read_services

MAX_DEPTH = 16  # include chains deeper than this are cycles in practice


@dataclass(frozen=True)
class Container:
    """An app, router, blueprint or route list; its id is `file:name` or `file:line:col`."""

    id: str
    framework: str
    own_prefix: str


@dataclass(frozen=True)
class Edge:
    parent: str
    child: str
    prefix: str | None  # None: Flask's "no url_prefix given at registration"


@dataclass(frozen=True)
class Route:
    container: str
    framework: str
    method: str
    path: str  # as written, before the container's prefixes
    handler: str
    file: str
    line: int


@dataclass(frozen=True)
class Site:
    """Where a recogniser fires: a call in a module, the container it adds to, the framework
    the routes belong to, and the name that chose the recogniser (the attribute called, or
    the last part of the callee's qualified name)."""

    mod: Module
    call: ast.Call
    cid: str
    framework: str
    name: str


class Scan:
    """Whole-tree state: modules (with a suffix index, so `src/` layouts and Django projects
    in a subfolder resolve their absolute imports), containers, edges, routes, proto services,
    warnings, and the ids of route calls already visited (so the fallback pass skips them).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[Module] = []
        self.by_suffix: dict[str, list[Module]] = {}
        self.containers: dict[str, Container] = {}
        self.edges: list[Edge] = []
        self.routes: list[Route] = []
        self.protos: dict[str, tuple[str, set[str]]] = {}  # service -> (package, rpcs)
        self.warnings: list[ScanWarning] = []
        self.visited: set[int] = set()

    def load(self) -> None:
        """Pass 1: parse every module, read its imports and constants; read `.proto` files."""
        for path in iter_files(self.root, ".py"):
            mod = load_module(self.root, path)
            if isinstance(mod, ScanWarning):
                self.warnings.append(mod)
                continue
            self.modules.append(mod)
            pieces = mod.name.split(".")
            for i in range(len(pieces)):
                self.by_suffix.setdefault(".".join(pieces[i:]), []).append(mod)
        for path in iter_files(self.root, ".proto"):
            for service, found in read_services(path).items():
                self.protos.setdefault(service, found)

    # ---- names

    def find_module(self, qual: str) -> Module | None:
        found = self.by_suffix.get(qual, [])
        exact = [m for m in found if m.name == qual]
        if exact or len(found) == 1:
            return (exact or found)[0]
        return None

    def qualname(self, mod: Module, expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return mod.imports.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.qualname(mod, expr.value)
            return f"{base}.{expr.attr}" if base else None
        return None

    def callee(self, mod: Module, call: ast.Call) -> str:
        """The called function's qualified name, "" when it is not an imported name."""
        return self.qualname(mod, call.func) or ""

    def string(self, mod: Module, expr: ast.expr | None) -> str | None:
        """A string literal, a module-level string constant, or a `+` of those."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return expr.value
        if isinstance(expr, ast.Name):
            return mod.consts.get(expr.id)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left, right = self.string(mod, expr.left), self.string(mod, expr.right)
            return left + right if left is not None and right is not None else None
        return None

    def optional_string(self, mod: Module, call: ast.Call, name: str, otherwise: str) -> str | None:
        """Keyword `name` as a string; None when absent, or (with a warning) not a literal."""
        expr = kwarg(call, name)
        found = self.string(mod, expr) if expr is not None else None
        if expr is not None and found is None:
            self.warn(mod, call, f"{name}= is not a string literal; {otherwise}")
        return found

    def methods(self, mod: Module, expr: ast.expr | None, default: list[str]) -> list[str] | None:
        """`methods=[...]` upper-cased and sorted; the default when absent, None when unknowable."""
        if expr is None:
            return default
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            out = [self.string(mod, e) for e in expr.elts]
            if all(m is not None for m in out):
                return sorted({m.upper() for m in out if m is not None})
        return None

    def class_def(self, mod: Module,
                  expr: ast.expr | str | None) -> tuple[Module, ast.ClassDef] | None:
        """The class `expr` (or the name of a decorated class) names, when the tree defines it:
        in `mod`, or in a scanned module it is imported from; with the module defining it."""
        if isinstance(expr, str):
            expr = ast.Name(id=expr)
        if isinstance(expr, ast.Name) and expr.id in mod.classes:
            return mod, mod.classes[expr.id]
        qual = self.qualname(mod, expr) if expr is not None else None
        if qual and "." in qual:
            owner, _, name = qual.rpartition(".")
            other = self.find_module(owner)
            if other is not None and other is not mod and name in other.classes:
                return other, other.classes[name]
        return None

    def class_verbs(self, mod: Module, expr: ast.expr | str | None,
                    verbs: Collection[str]) -> list[str] | None:
        """The HTTP methods a class-based view answers, upper-cased and sorted: which of `verbs`
        the class `expr` names has as attributes (methods, or aliases such as `head = get`), its
        own or inherited from classes the tree defines, as the view finds them with `getattr`
        when it dispatches a request by its method. None when `expr` names no class of the
        tree (a function, say)."""
        found_class = self.class_def(mod, expr)
        if found_class is None:
            return None
        found: set[str] = set()
        todo: list[tuple[Module, ast.ClassDef]] = [found_class]
        seen: set[int] = set()
        while todo and len(seen) <= MAX_DEPTH:
            where, node = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            for stmt in node.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found.add(stmt.name)
                elif isinstance(stmt, ast.Assign):
                    found.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
            todo.extend(base for b in node.bases if (base := self.class_def(where, b)))
        return sorted(name.upper() for name in found & set(verbs))

    def resolve(self, mod: Module, expr: ast.expr, depth: int = 0) -> str | None:
        """The container an expression names: a local, an imported name, or `app.router`."""
        if depth > MAX_DEPTH:
            return None
        if isinstance(expr, ast.Name) and expr.id in mod.containers:
            return mod.containers[expr.id]
        if isinstance(expr, ast.Attribute) and expr.attr == "router":
            inner = self.resolve(mod, expr.value, depth + 1)
            if inner and self.containers[inner].framework in ("aiohttp", "starlette", "fastapi"):
                return inner
        qual = self.qualname(mod, expr)
        if qual and "." in qual:
            owner, _, attr = qual.rpartition(".")
            other = self.find_module(owner)
            if other is not None and other is not mod:
                return self.resolve(other, ast.Name(id=attr), depth + 1)
        return None

    # ---- records

    def warn(self, mod: Module, node: ast.AST, message: str) -> None:
        self.warnings.append(ScanWarning(mod.rel, getattr(node, "lineno", 1), message))

    def warn_unresolved(self, mod: Module, node: ast.AST, subject: str) -> None:
        """`subject` cannot be tied to a container; worth saying only in a web module."""
        if mod.imports_web():
            self.warn(mod, node, f"{subject} cannot be resolved statically; skipped")

    def container(self, cid: str, framework: str, own_prefix: str = "") -> str:
        self.containers.setdefault(cid, Container(cid, framework, own_prefix))
        return cid

    def link(self, parent: str, child: str, prefix: str | None) -> None:
        self.edges.append(Edge(parent, child, prefix))

    def mounted(self, at: Site, prefix: str) -> str:
        """A nameless container for what the call at `at` mounts under `prefix`."""
        anon = self.container(f"{at.mod.rel}:{at.call.lineno}:{at.call.col_offset}", at.framework)
        self.link(at.cid, anon, prefix)
        return anon

    def register(self, at: Site, child_expr: ast.expr | None, prefix: str | None) -> None:
        """`register_blueprint` / `include_router`: an edge to the container `child_expr` names."""
        child = self.resolve(at.mod, child_expr) if child_expr is not None else None
        if child is None:
            self.warn(at.mod, at.call, "the blueprint or router being registered cannot be "
                      "resolved statically; its routes keep their own prefix")  # fmt: skip
            return
        self.link(at.cid, child, prefix)

    def add(
        self, at: Site, methods: Sequence[str] | None, path_expr: ast.expr | None,
        handler: ast.expr | str | None,
    ) -> None:  # fmt: skip
        """A route, if its path and methods read statically; else a warning that says which not."""
        path = self.string(at.mod, path_expr)
        if path is None:
            self.warn(at.mod, at.call,
                      "route path is not a string literal or module constant; skipped")  # fmt: skip
        elif methods is None:
            self.warn(at.mod, at.call, "route methods are not a literal list of strings; skipped")
        else:
            self.route(at.mod, at.call, at.cid, at.framework, methods, path, handler)

    def add_listed(
        self, at: Site, path_expr: ast.expr | None, handler: ast.expr | str | None
    ) -> None:
        """A route whose methods come from `methods=[...]` (GET when absent)."""
        self.add(at, self.methods(at.mod, kwarg(at.call, "methods"), ["GET"]), path_expr, handler)

    def route(
        self, mod: Module, node: ast.AST, cid: str, framework: str, methods: Sequence[str],
        path: str, handler: ast.expr | str | None,
    ) -> None:  # fmt: skip
        if isinstance(handler, str):
            name = handler
        elif isinstance(handler, (ast.Name, ast.Attribute)):
            name = ast.unparse(handler)
        else:
            name = ""
        line = getattr(node, "lineno", 1)
        for method in methods:
            self.routes.append(Route(cid, framework, method, path, name, mod.rel, line))

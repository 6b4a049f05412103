"""Discover a service's HTTP and gRPC endpoints from its own source, without running it.

Parses with the standard library's `ast`, not LibCST: we only read, never rewrite, so a concrete
syntax tree buys nothing, while `ast` (the C parser) is an order of magnitude faster and gives line
numbers directly. Nothing of the service is imported or executed.

What is recognised (names are resolved through each module's imports, so `os.path` is never a
Django `path` and a decorator counts only on an object the framework created):

* Flask: `@app.route/get/post/...`, `methods=[...]`, `add_url_rule`, Blueprints with
  `url_prefix` in the constructor or in `register_blueprint` (which overrides it, as in Flask).
* FastAPI: `@app.get/...`, `@router.post/...`, `api_route`, `add_api_route`, `APIRouter(prefix=)`,
  `include_router(prefix=)`.
* Starlette: `Route(...)` in `routes=[...]` (inline or a list variable),
  `Mount(path, routes=|app=)`, `app.add_route`, `app.mount`.
* aiohttp: `web.get(...)` and friends in `add_routes([...])`, `app.router.add_get/add_route/...`,
  `@routes.get(...)` on a `RouteTableDef`, `add_subapp(prefix, app)`.
* Django: `urlpatterns` with `path()`, `re_path()`, `url()`, `include()` of a module in the tree.
* gRPC: classes subclassing `<Service>Servicer` from a `*_pb2_grpc` module; the package comes
  from that module's generated method paths or from a `.proto` file in the tree.

Containers (apps, routers, blueprints, route lists) and the edges between them (include, mount,
register) are collected for the whole tree first, so prefixes applied in another module are seen.
Anything that cannot be resolved statically becomes a warning with `path:line` and is skipped.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Endpoint", "EndpointReport", "ScanWarning", "discover_endpoints"]

ANY_METHOD = "*"
GRPC_METHOD = "GRPC"
_VERBS = ("get", "post", "put", "delete", "patch", "head", "options", "trace")
_SKIP_DIRS = frozenset(
    {"__pycache__", "node_modules", "site-packages", "venv", "env", "build", "dist", "htmlcov"}
)
_MAX_DEPTH = 16  # include chains deeper than this are cycles in practice

# Callee qualified names -> what they construct.
_CONSTRUCTORS = {
    "flask.Flask": ("flask", "app"),
    "flask.app.Flask": ("flask", "app"),
    "flask.Blueprint": ("flask", "blueprint"),
    "flask.blueprints.Blueprint": ("flask", "blueprint"),
    "fastapi.FastAPI": ("fastapi", "app"),
    "fastapi.applications.FastAPI": ("fastapi", "app"),
    "fastapi.APIRouter": ("fastapi", "router"),
    "fastapi.routing.APIRouter": ("fastapi", "router"),
    "starlette.applications.Starlette": ("starlette", "app"),
    "starlette.routing.Router": ("starlette", "router"),
    "aiohttp.web.Application": ("aiohttp", "app"),
    "aiohttp.web_app.Application": ("aiohttp", "app"),
    "aiohttp.web.RouteTableDef": ("aiohttp", "table"),
    "aiohttp.web_routedef.RouteTableDef": ("aiohttp", "table"),
}
_STARLETTE_ROUTE = {"starlette.routing.Route"}
_STARLETTE_MOUNT = {"starlette.routing.Mount"}
_STARLETTE_IGNORED = {"starlette.routing.WebSocketRoute", "starlette.routing.Host"}
_DJANGO_PATH = {"django.urls.path", "django.urls.conf.path"}
_DJANGO_RE_PATH = {"django.urls.re_path", "django.urls.conf.re_path", "django.conf.urls.url"}
_DJANGO_INCLUDE = {"django.urls.include", "django.urls.conf.include", "django.conf.urls.include"}
_AIOHTTP_DEFS = {
    f"{mod}.{verb}" for mod in ("aiohttp.web", "aiohttp.web_routedef") for verb in _VERBS[:7]
} | {f"{mod}.{f}" for mod in ("aiohttp.web", "aiohttp.web_routedef") for f in ("route", "view")}
_ROUTE_CALLS = _STARLETTE_ROUTE | _STARLETTE_MOUNT | _STARLETTE_IGNORED | _DJANGO_PATH
_ROUTE_CALLS = _ROUTE_CALLS | _DJANGO_RE_PATH | _AIOHTTP_DEFS
_GRPC_PATH_RE = re.compile(r"/((?:\w+\.)*)(\w+)/(\w+)\Z")


@dataclass(frozen=True, order=True)
class Endpoint:
    """One endpoint. `method` is an HTTP verb, `*` (any: Django, aiohttp `*`) or `GRPC`;
    `path` is the route template (prefixes applied) or the gRPC name `/package.Service/Method`.
    """

    file: str  # relative to the scanned root, '/'-separated
    line: int
    framework: str  # flask | fastapi | starlette | aiohttp | django | grpc
    method: str
    path: str
    handler: str  # the view as written (`views.index`, `Greeter.SayHello`); "" when not a name

    @property
    def resource(self) -> str:
        """The runtime's resource name (docs/architecture.md): `METHOD template` or gRPC name."""
        return self.path if self.framework == "grpc" else f"{self.method} {self.path}"


@dataclass(frozen=True, order=True)
class ScanWarning:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class EndpointReport:
    endpoints: tuple[Endpoint, ...]
    warnings: tuple[ScanWarning, ...]

    def to_dict(self) -> dict[str, list[dict[str, object]]]:
        return {
            "endpoints": [asdict(e) for e in self.endpoints],
            "warnings": [asdict(w) for w in self.warnings],
        }

    def to_json(self) -> str:
        """Deterministic JSON: sorted entries, sorted keys, trailing newline."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- tree model


@dataclass
class _Module:
    name: str
    rel: str
    is_package: bool
    tree: ast.Module
    imports: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    consts: dict[str, str] = field(default_factory=dict)  # module-level string constants
    containers: dict[str, str] = field(default_factory=dict)  # local name -> container id
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)


@dataclass(frozen=True)
class _Container:
    id: str
    framework: str
    own_prefix: str


@dataclass(frozen=True)
class _Edge:
    parent: str
    child: str
    prefix: str | None  # None: Flask's "no url_prefix given at registration"


@dataclass(frozen=True)
class _Route:
    container: str
    framework: str
    method: str
    path: str
    handler: str
    file: str
    line: int


def _iter_files(root: Path, suffix: str) -> Iterator[Path]:
    for path in sorted(root.rglob(f"*{suffix}")):
        parts = path.relative_to(root).parts[:-1]
        if any(p.startswith(".") or p in _SKIP_DIRS or p.endswith(".egg-info") for p in parts):
            continue
        yield path


def _module_name(rel: Path) -> tuple[str, bool]:
    parts = list(rel.with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


class _Scanner:
    """Whole-tree state: modules (with a suffix index, so `src/` layouts and Django projects
    in a subfolder resolve their absolute imports), containers, edges, routes, proto services,
    warnings, and the ids of route calls already visited (so the fallback pass skips them).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[_Module] = []
        self.by_suffix: dict[str, list[_Module]] = {}
        self.containers: dict[str, _Container] = {}
        self.edges: list[_Edge] = []
        self.routes: list[_Route] = []
        self.protos: dict[str, tuple[str, set[str]]] = {}  # service -> (package, rpcs)
        self.warnings: list[ScanWarning] = []
        self.visited: set[int] = set()

    # ---- pass 1: parse, imports, constants

    def load(self) -> None:
        for path in _iter_files(self.root, ".py"):
            rel = path.relative_to(self.root)
            try:
                tree = ast.parse(path.read_bytes(), filename=str(rel))
            except SyntaxError as exc:
                self.warn_at(rel.as_posix(), exc.lineno or 1, f"cannot parse: {exc.msg}; skipped")
                continue
            except (OSError, ValueError) as exc:
                self.warn_at(rel.as_posix(), 1, f"cannot read: {exc}; skipped")
                continue
            name, is_package = _module_name(rel)
            mod = _Module(name, rel.as_posix(), is_package, tree)
            self._collect_imports(mod)
            self.modules.append(mod)
            pieces = name.split(".")
            for i in range(len(pieces)):
                self.by_suffix.setdefault(".".join(pieces[i:]), []).append(mod)
        for path in _iter_files(self.root, ".proto"):
            self._load_proto(path)

    def _collect_imports(self, mod: _Module) -> None:
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        mod.imports[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        mod.imports[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod.name.split(".") if mod.name else []
                    if not mod.is_package:
                        pkg = pkg[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                    base = ".".join([*pkg, base] if base else pkg)
                for alias in node.names:
                    local = alias.asname or alias.name
                    mod.imports[local] = f"{base}.{alias.name}" if base else alias.name
            elif isinstance(node, ast.ClassDef):
                mod.classes[node.name] = node
        for stmt in mod.tree.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                mod.consts[stmt.targets[0].id] = stmt.value.value

    def _load_proto(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return
        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)
        pkg_match = re.search(r"\bpackage\s+([\w.]+)\s*;", text)
        package = pkg_match.group(1) if pkg_match else ""
        for match in re.finditer(r"\bservice\s+(\w+)\s*\{", text):
            depth, i = 1, match.end()
            while i < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            rpcs = set(re.findall(r"\brpc\s+(\w+)\s*\(", text[match.end() : i]))
            self.protos.setdefault(match.group(1), (package, rpcs))

    # ---- helpers

    def warn_at(self, file: str, line: int, message: str) -> None:
        self.warnings.append(ScanWarning(file, line, message))

    def warn(self, mod: _Module, node: ast.AST, message: str) -> None:
        self.warn_at(mod.rel, getattr(node, "lineno", 1), message)

    def find_module(self, qual: str) -> _Module | None:
        found = self.by_suffix.get(qual, [])
        exact = [m for m in found if m.name == qual]
        if exact or len(found) == 1:
            return (exact or found)[0]
        return None

    def qualname(self, mod: _Module, expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return mod.imports.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.qualname(mod, expr.value)
            return f"{base}.{expr.attr}" if base else None
        return None

    def callee(self, mod: _Module, call: ast.Call) -> str | None:
        return self.qualname(mod, call.func)

    def string(self, mod: _Module, expr: ast.expr | None) -> str | None:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return expr.value
        if isinstance(expr, ast.Name):
            return mod.consts.get(expr.id)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left, right = self.string(mod, expr.left), self.string(mod, expr.right)
            return left + right if left is not None and right is not None else None
        return None

    def resolve(self, mod: _Module, expr: ast.expr, depth: int = 0) -> str | None:
        """The container an expression names: a local, an imported name, or `app.router`."""
        if depth > _MAX_DEPTH:
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

    def container(self, cid: str, framework: str, own_prefix: str = "") -> str:
        self.containers.setdefault(cid, _Container(cid, framework, own_prefix))
        return cid

    def route(
        self, mod: _Module, node: ast.AST, cid: str, framework: str, methods: Sequence[str],
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
            self.routes.append(_Route(cid, framework, method, path, name, mod.rel, line))

    def methods(self, mod: _Module, expr: ast.expr | None, default: list[str]) -> list[str] | None:
        if expr is None:
            return default
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            out = [self.string(mod, e) for e in expr.elts]
            if all(m is not None for m in out):
                return sorted({m.upper() for m in out if m is not None})
        return None


def _arg(call: ast.Call, index: int, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    if index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[:index]):
        return call.args[index]
    return None


def _kwarg(call: ast.Call, name: str) -> ast.expr | None:
    return _arg(call, 1 << 30, name)


def _join(framework: str, prefix: str, path: str) -> str:
    if framework == "flask":
        # Flask joins url_prefix and rule with exactly one slash (Blueprint.add_url_rule).
        if not prefix:
            return path
        return prefix.rstrip("/") + "/" + path.lstrip("/") if path else prefix
    if prefix.endswith("/") and path.startswith("/"):
        return prefix[:-1] + path
    return prefix + path


def _imports_web(mod: _Module) -> bool:
    roots = {q.split(".")[0] for q in mod.imports.values()}
    return bool(roots & {"flask", "fastapi", "starlette", "aiohttp", "django"})


_FLASK_DECORATORS = {"route": None, **{v: [v.upper()] for v in _VERBS[:5]}}
_FASTAPI_DECORATORS = {"api_route": None, **{v: [v.upper()] for v in _VERBS}}
_AIOHTTP_ADDERS = {f"add_{v}": [v.upper()] for v in _VERBS[:7]}
_WARN_UNRESOLVED_CALLS = frozenset(
    {"add_url_rule", "register_blueprint", "include_router", "add_api_route", "add_subapp"}
)


class _Collector:
    """Passes 2 and 3 over one `_Scanner`: containers first (whole tree), then routes/edges."""

    def __init__(self, scan: _Scanner) -> None:
        self.s = scan

    # ---- pass 2: containers

    def containers(self) -> None:
        for mod in self.s.modules:
            for target, value in self._assignments(mod):
                self._define(mod, target, value)
        for mod in self.s.modules:  # aliases (`router = app.router`, `api = app`) see all
            for target, value in self._assignments(mod):
                if target not in mod.containers and isinstance(value, (ast.Name, ast.Attribute)):
                    cid = self.s.resolve(mod, value)
                    if cid:
                        mod.containers[target] = cid

    @staticmethod
    def _assignments(mod: _Module) -> Iterator[tuple[str, ast.expr]]:
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

    def _define(self, mod: _Module, target: str, value: ast.expr) -> None:
        cid = f"{mod.rel}:{target}"
        if isinstance(value, ast.Call):
            made = _CONSTRUCTORS.get(self.s.callee(mod, value) or "")
            if made is None:
                return
            framework, kind = made
            prefix_arg = {"blueprint": "url_prefix", "router": "prefix"}.get(kind)
            prefix = ""
            if framework != "starlette" and prefix_arg:
                expr = _kwarg(value, prefix_arg)
                found = self.s.string(mod, expr) if expr is not None else ""
                if found is None:
                    self.s.warn(mod, value, f"{prefix_arg}= is not a string literal; ignored")
                prefix = found or ""
            mod.containers[target] = self.s.container(cid, framework, prefix)
        elif (target == "urlpatterns" and _imports_web(mod)) or self._route_list_framework(
            mod, value
        ):
            framework = self._route_list_framework(mod, value) or "django"
            mod.containers[target] = self.s.container(cid, framework)

    def _route_list_framework(self, mod: _Module, value: ast.expr) -> str | None:
        if not isinstance(value, (ast.List, ast.Tuple, ast.BinOp)):
            return None
        for node in ast.walk(value):
            if isinstance(node, ast.Call):
                q = self.s.callee(mod, node) or ""
                if q in _ROUTE_CALLS:
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
                        self._decorator(mod, node, dec)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    self._method_call(mod, node, node.func)
                elif isinstance(node, ast.ClassDef):
                    self._grpc_class(mod, node)
            # Route calls in no known list (a factory's `return Starlette(routes=[...])`, say):
            # record them without a prefix rather than lose them. Breadth-first, so a Mount is
            # visited before the routes inside it.
            for node in ast.walk(mod.tree):
                if isinstance(node, ast.Call) and id(node) not in self.s.visited:
                    q = self.s.callee(mod, node) or ""
                    if q in _ROUTE_CALLS:
                        root = self.s.container(f"{mod.rel}:<unnamed>", q.split(".")[0])
                        self.visit_routes(mod, node, root)

    def _assignment(self, mod: _Module, node: ast.Assign | ast.AugAssign | ast.AnnAssign) -> None:
        if node.value is None:
            return
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            if not isinstance(t, ast.Name) or t.id not in mod.containers:
                continue
            cid = mod.containers[t.id]
            if not cid.startswith(f"{mod.rel}:"):
                continue  # an alias of another module's container: its own module visits it
            value = node.value
            if isinstance(value, ast.Call):
                routes = _kwarg(value, "routes")
                if routes is not None and (self.s.callee(mod, value) or "") in _CONSTRUCTORS:
                    self.visit_routes(mod, routes, cid)
            elif isinstance(value, (ast.List, ast.Tuple, ast.BinOp)):
                self.visit_routes(mod, value, cid)

    def _decorator(self, mod: _Module, fn: ast.AST, dec: ast.expr) -> None:
        if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)):
            return
        attr = dec.func.attr
        cid = self.s.resolve(mod, dec.func.value)
        first = self.s.string(mod, dec.args[0]) if dec.args else None
        if cid is None:
            looks_like_route = attr in ("route", "api_route") or (
                attr in _VERBS and first is not None and first.startswith("/")
            )
            if looks_like_route and _imports_web(mod):
                self.s.warn(
                    mod, dec, f"route decorator @{ast.unparse(dec.func)}(...): its app, router "
                    "or blueprint cannot be resolved statically; skipped",
                )  # fmt: skip
            return
        framework = self.s.containers[cid].framework
        handler = getattr(fn, "name", "")
        if framework == "aiohttp":
            if attr in _VERBS[:7]:
                self._add(mod, dec, cid, framework, [attr.upper()], _arg(dec, 0, "path"), handler)
            elif attr == "route":
                method = self.s.string(mod, _arg(dec, 0, "method"))
                self._add(mod, dec, cid, framework, [method] if method else None,
                          _arg(dec, 1, "path"), handler)  # fmt: skip
            elif attr == "view":
                self._add(mod, dec, cid, framework, [ANY_METHOD], _arg(dec, 0, "path"), handler)
            return
        table = {"flask": _FLASK_DECORATORS, "fastapi": _FASTAPI_DECORATORS}.get(
            framework, {"route": None}
        )
        if attr not in table:
            return  # errorhandler, before_request, websocket, middleware, ...
        fixed = table[attr]
        methods = fixed or self.s.methods(mod, _kwarg(dec, "methods"), ["GET"])
        path = _arg(dec, 0, "rule") or _arg(dec, 0, "path")
        self._add(mod, dec, cid, framework, methods, path, handler)

    def _method_call(self, mod: _Module, call: ast.Call, func: ast.Attribute) -> None:
        attr = func.attr
        cid = self.s.resolve(mod, func.value)
        if cid is None:
            if attr in _WARN_UNRESOLVED_CALLS and _imports_web(mod):
                self.s.warn(
                    mod, call, f"{ast.unparse(func)}(...): the app or router cannot be resolved "
                    "statically; skipped",
                )  # fmt: skip
            return
        fw = self.s.containers[cid].framework
        if fw == "flask" and attr == "add_url_rule":
            methods = self.s.methods(mod, _kwarg(call, "methods"), ["GET"])
            self._add(mod, call, cid, fw, methods, _arg(call, 0, "rule"),
                      _arg(call, 2, "view_func"))  # fmt: skip
        elif fw == "flask" and attr == "register_blueprint":
            prefix_expr = _kwarg(call, "url_prefix")
            prefix = self.s.string(mod, prefix_expr) if prefix_expr is not None else None
            if prefix_expr is not None and prefix is None:
                self.s.warn(mod, call, "url_prefix= is not a string literal; prefix ignored")
            self._edge(mod, call, cid, _arg(call, 0, "blueprint"), prefix)
        elif fw == "fastapi" and attr == "include_router":
            prefix_expr = _kwarg(call, "prefix")
            prefix = self.s.string(mod, prefix_expr) if prefix_expr is not None else ""
            if prefix is None:
                self.s.warn(mod, call, "prefix= is not a string literal; prefix ignored")
            self._edge(mod, call, cid, _arg(call, 0, "router"), prefix or "")
        elif fw in ("fastapi", "starlette") and attr in ("add_api_route", "add_route"):
            methods = self.s.methods(mod, _kwarg(call, "methods"), ["GET"])
            self._add(mod, call, cid, fw, methods, _arg(call, 0, "path"),
                      _arg(call, 1, "endpoint"))  # fmt: skip
        elif fw in ("fastapi", "starlette", "aiohttp") and attr in ("mount", "add_subapp"):
            prefix = self.s.string(mod, _arg(call, 0, "path" if attr == "mount" else "prefix"))
            if prefix is None:
                self.s.warn(mod, call, f"{attr}() prefix is not a string literal; skipped")
                return
            app = _arg(call, 1, "app" if attr == "mount" else "subapp")
            if app is not None:
                anon = self.s.container(f"{mod.rel}:{call.lineno}:{call.col_offset}", fw)
                self.s.edges.append(_Edge(cid, anon, prefix))
                self.visit_app(mod, app, anon)
        elif fw == "aiohttp" and attr in _AIOHTTP_ADDERS:
            self._add(mod, call, cid, fw, _AIOHTTP_ADDERS[attr], _arg(call, 0, "path"),
                      _arg(call, 1, "handler"))  # fmt: skip
        elif fw == "aiohttp" and attr == "add_route":
            method = self.s.string(mod, _arg(call, 0, "method"))
            self._add(mod, call, cid, fw, [method.upper()] if method else None,
                      _arg(call, 1, "path"), _arg(call, 2, "handler"))  # fmt: skip
        elif fw == "aiohttp" and attr == "add_view":
            self._add(mod, call, cid, fw, [ANY_METHOD], _arg(call, 0, "path"),
                      _arg(call, 1, "handler"))  # fmt: skip
        elif fw == "aiohttp" and attr == "add_routes" and call.args:
            self.visit_routes(mod, call.args[0], cid)

    def _add(
        self, mod: _Module, node: ast.AST, cid: str, framework: str,
        methods: Sequence[str] | None, path_expr: ast.expr | None,
        handler: ast.expr | str | None,
    ) -> None:  # fmt: skip
        path = self.s.string(mod, path_expr)
        if path is None:
            self.s.warn(mod, node, "route path is not a string literal or module constant; skipped")
        elif methods is None:
            self.s.warn(mod, node, "route methods are not a literal list of strings; skipped")
        else:
            self.s.route(mod, node, cid, framework, methods, path, handler)

    def _edge(
        self, mod: _Module, node: ast.AST, parent: str, child_expr: ast.expr | None,
        prefix: str | None,
    ) -> None:  # fmt: skip
        child = self.s.resolve(mod, child_expr) if child_expr is not None else None
        if child is None:
            self.s.warn(mod, node, "the blueprint or router being registered cannot be "
                        "resolved statically; its routes keep their own prefix")  # fmt: skip
            return
        self.s.edges.append(_Edge(parent, child, prefix))

    # ---- route lists (Starlette, Django, aiohttp route definitions)

    def visit_routes(self, mod: _Module, expr: ast.expr, cid: str) -> None:
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            for elt in expr.elts:
                self.visit_routes(mod, elt, cid)
        elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            self.visit_routes(mod, expr.left, cid)
            self.visit_routes(mod, expr.right, cid)
        elif isinstance(expr, ast.Starred):
            self.visit_routes(mod, expr.value, cid)
        elif isinstance(expr, ast.Call) and (self.s.callee(mod, expr) or "") in _ROUTE_CALLS:
            self.s.visited.add(id(expr))
            self._route_call(mod, expr, cid, self.s.callee(mod, expr) or "")
        elif isinstance(expr, (ast.Name, ast.Attribute)):
            target = self.s.resolve(mod, expr)
            if target is None:
                self.s.warn(mod, expr, f"routes come from {ast.unparse(expr)!r}, which is not a "
                            "statically visible route list; skipped")  # fmt: skip
            elif target != cid:
                self.s.edges.append(_Edge(cid, target, ""))
        else:
            self.s.warn(mod, expr, f"route entry {ast.unparse(expr)[:60]!r} cannot be read "
                        "statically; skipped")  # fmt: skip

    def _route_call(self, mod: _Module, call: ast.Call, cid: str, q: str) -> None:
        if q in _STARLETTE_ROUTE:
            endpoint = _arg(call, 1, "endpoint")
            methods = self.s.methods(
                mod, _kwarg(call, "methods"), self._class_methods(mod, endpoint)
            )
            self._add(mod, call, cid, "starlette", methods, _arg(call, 0, "path"), endpoint)
        elif q in _STARLETTE_MOUNT:
            prefix = self.s.string(mod, _arg(call, 0, "path"))
            if prefix is None:
                self.s.warn(mod, call, "Mount path is not a string literal; skipped")
                return
            anon = self.s.container(f"{mod.rel}:{call.lineno}:{call.col_offset}", "starlette")
            self.s.edges.append(_Edge(cid, anon, prefix))
            routes, app = _kwarg(call, "routes"), _arg(call, 1, "app")
            if routes is not None:
                self.visit_routes(mod, routes, anon)
            elif app is not None:
                self.visit_app(mod, app, anon)
        elif q in _DJANGO_PATH or q in _DJANGO_RE_PATH:
            route = self.s.string(mod, _arg(call, 0, "route"))
            view = _arg(call, 1, "view")
            if route is None:
                self.s.warn(mod, call, "URL pattern is not a string literal; skipped")
                return
            # Regex pieces are concatenated as Django does; an anchor only means something at
            # the start of the whole pattern, so it is dropped from each piece.
            piece = route.removeprefix("^") if q in _DJANGO_RE_PATH else route
            if isinstance(view, ast.Call) and (self.s.callee(mod, view) or "") in _DJANGO_INCLUDE:
                self._include(mod, view, cid, piece)
            elif isinstance(view, ast.Attribute) and view.attr == "urls":
                # `admin.site.urls`, `router.urls`: a URLconf built at run time.
                self.s.warn(mod, call, f"{ast.unparse(view)} is a URLconf built at run time; "
                            "its routes are skipped")  # fmt: skip
            else:
                self.s.route(mod, call, cid, "django", [ANY_METHOD], piece, view)
        elif q in _AIOHTTP_DEFS:
            verb = q.rsplit(".", 1)[1]
            if verb == "route":
                method = self.s.string(mod, _arg(call, 0, "method"))
                self._add(mod, call, cid, "aiohttp", [method.upper()] if method else None,
                          _arg(call, 1, "path"), _arg(call, 2, "handler"))  # fmt: skip
            else:
                methods = [ANY_METHOD] if verb == "view" else [verb.upper()]
                self._add(mod, call, cid, "aiohttp", methods, _arg(call, 0, "path"),
                          _arg(call, 1, "handler"))  # fmt: skip
        # WebSocketRoute and Host: not HTTP endpoints we govern.

    def _class_methods(self, mod: _Module, endpoint: ast.expr | None) -> list[str]:
        """Starlette's default: a function answers GET; an HTTPEndpoint the verbs it defines."""
        if isinstance(endpoint, ast.Name) and endpoint.id in mod.classes:
            body = mod.classes[endpoint.id].body
            verbs = sorted(
                f.name.upper()
                for f in body
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name in _VERBS
            )
            return verbs or [ANY_METHOD]
        return ["GET"]

    def visit_app(self, mod: _Module, expr: ast.expr, cid: str) -> None:
        if isinstance(expr, ast.Call):
            routes = _kwarg(expr, "routes")
            if (self.s.callee(mod, expr) or "") in _CONSTRUCTORS and routes is not None:
                self.visit_routes(mod, routes, cid)
                return
        target = self.s.resolve(mod, expr)
        if target is None:
            self.s.warn(mod, expr, f"mounted app {ast.unparse(expr)[:60]!r} cannot be resolved "
                        "statically; skipped")  # fmt: skip
        else:
            self.s.edges.append(_Edge(cid, target, ""))

    def _include(self, mod: _Module, call: ast.Call, cid: str, piece: str) -> None:
        arg = _arg(call, 0, "arg")
        if isinstance(arg, ast.Tuple) and arg.elts:
            arg = arg.elts[0]  # include((patterns, app_name))
        if isinstance(arg, (ast.List, ast.Tuple)):
            anon = self.s.container(f"{mod.rel}:{call.lineno}:{call.col_offset}", "django")
            self.s.edges.append(_Edge(cid, anon, piece))
            self.visit_routes(mod, arg, anon)
            return
        dotted = self.s.string(mod, arg) if arg is not None else None
        if dotted is None and arg is not None:
            dotted = self.s.qualname(mod, arg)
            local = self.s.resolve(mod, arg)
            if local is not None:
                self.s.edges.append(_Edge(cid, local, piece))
                return
        target_mod = self.s.find_module(dotted) if dotted else None
        target = target_mod.containers.get("urlpatterns") if target_mod else None
        if target is None:
            what = repr(dotted) if dotted else ast.unparse(arg) if arg is not None else "nothing"
            self.s.warn(mod, call, f"include({what}): no urlpatterns found for it in the scanned "
                        "tree (dynamic or outside it); skipped")  # fmt: skip
            return
        self.s.edges.append(_Edge(cid, target, piece))

    # ---- gRPC

    def _grpc_class(self, mod: _Module, cls: ast.ClassDef) -> None:
        for base in cls.bases:
            qual = self.s.qualname(mod, base)
            if qual is None or "." not in qual:
                continue
            grpc_mod, _, base_name = qual.rpartition(".")
            if not (base_name.endswith("Servicer") and grpc_mod.endswith("_pb2_grpc")):
                continue
            service = base_name.removesuffix("Servicer")
            full, rpcs = self._grpc_service(grpc_mod, service)
            if full is None:
                self.s.warn(
                    mod, cls, f"package of gRPC service {service!r} unknown ({grpc_mod} "
                    "and no .proto for it in the tree): names assume no package",
                )  # fmt: skip
                full = service
            for fn in cls.body:
                if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                known_rpc = fn.name in rpcs if rpcs else not fn.name.startswith("_")
                if known_rpc:
                    cid = self.s.container(f"{mod.rel}:{cls.name}", "grpc")
                    self.s.route(mod, fn, cid, "grpc", [GRPC_METHOD], f"/{full}/{fn.name}",
                                 f"{cls.name}.{fn.name}")  # fmt: skip

    def _grpc_service(self, grpc_mod: str, service: str) -> tuple[str | None, set[str]]:
        """The service's full name and RPCs: generated method paths, else a .proto, else None."""
        gen = self.s.find_module(grpc_mod)
        if gen is not None:
            rpcs: set[str] = set()
            full: str | None = None
            for node in ast.walk(gen.tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    m = _GRPC_PATH_RE.match(node.value)
                    if m and m.group(2) == service:
                        full = f"{m.group(1)}{service}"
                        rpcs.add(m.group(3))
            if full is not None:
                return full, rpcs
        if service in self.s.protos:
            package, proto_rpcs = self.s.protos[service]
            return (f"{package}.{service}" if package else service), proto_rpcs
        return None, set()


def _prefixes(scan: _Scanner, incoming: dict[str, list[_Edge]], cid: str, depth: int) -> list[str]:
    c = scan.containers[cid]
    edges = incoming.get(cid, [])
    if not edges or depth > _MAX_DEPTH:
        return [c.own_prefix]
    out: list[str] = []
    for e in edges:
        for base in _prefixes(scan, incoming, e.parent, depth + 1):
            if c.framework == "flask":
                # register_blueprint(url_prefix=...) replaces the Blueprint's own prefix.
                mid = e.prefix if e.prefix is not None else c.own_prefix
                full = _join("flask", base, mid)
            else:
                full = _join(c.framework, base, (e.prefix or "") + c.own_prefix)
            if full not in out:
                out.append(full)
    return out


def discover_endpoints(root: str | Path) -> EndpointReport:
    """Scan every `.py` (and `.proto`) file under `root` and list its HTTP and gRPC endpoints.

    Skips hidden folders, virtualenvs, `site-packages`, `build`/`dist` and caches. Never imports
    or runs the service. Deterministic: the same tree gives the same report.
    """
    scan = _Scanner(Path(root))
    scan.load()
    collector = _Collector(scan)
    collector.containers()
    collector.routes()
    incoming: dict[str, list[_Edge]] = {}
    for e in scan.edges:
        if e not in incoming.setdefault(e.child, []):
            incoming[e.child].append(e)
    found: set[Endpoint] = set()
    for r in scan.routes:
        for prefix in _prefixes(scan, incoming, r.container, 0):
            if r.framework == "django":
                path = "/" + prefix + r.path
            elif r.framework == "grpc":
                path = r.path
            else:
                path = _join(r.framework, prefix, r.path)
            found.add(Endpoint(r.file, r.line, r.framework, r.method, path, r.handler))
    return EndpointReport(tuple(sorted(found)), tuple(sorted(set(scan.warnings))))

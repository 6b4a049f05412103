"""Every function of a module, in document order, with its fingerprint and shape.

Scanning uses the standard library's `ast` (an order of magnitude cheaper than a LibCST parse);
LibCST parses only the files that get rewritten, and `inject` finds the same functions again by
their document-order index (both trees list `def`s in the same depth-first statement order).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

PREFIX = "_instpy_"

# Function kinds; they decide how the trampoline returns, awaits and skips.
SYNC, GENERATOR, COROUTINE, ASYNC_GENERATOR = "sync", "generator", "coroutine", "async_generator"


@dataclass(frozen=True)
class FunctionInfo:
    """One `def`: `index` is its document-order position among all defs of the module."""

    index: int
    qualname: str
    class_path: str  # the qualname before the last dot ("" for a module-level function)
    name: str
    line: int
    kind: str
    params: tuple[str, ...]  # names as the function sees them, in signature order
    keys: tuple[str, ...]  # the same names as `call.params` keys (private names mangled)


def _mangle(name: str, class_name: str | None) -> str:
    if class_name is None or not name.startswith("__") or name.endswith("__"):
        return name
    stripped = class_name.lstrip("_")
    return f"_{stripped}{name}" if stripped else name


class _OwnBody(ast.NodeVisitor):
    """Finds yields that belong to one function (not to nested defs, lambdas or classes)."""

    def __init__(self) -> None:
        self.yields = False

    def visit_Yield(self, node: ast.Yield) -> None:
        self.yields = True

    def visit_YieldFrom(self, node: ast.YieldFrom) -> None:
        self.yields = True

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        return None

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        return None

    def visit_Lambda(self, node: ast.Lambda) -> None:
        return None

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        return None


def _kind(node: ast.FunctionDef | ast.AsyncFunctionDef, may_yield: bool) -> str:
    finder = _OwnBody()
    if may_yield:
        for stmt in node.body:
            finder.visit(stmt)
    if isinstance(node, ast.AsyncFunctionDef):
        return ASYNC_GENERATOR if finder.yields else COROUTINE
    return GENERATOR if finder.yields else SYNC


def _params(args: ast.arguments) -> tuple[str, ...]:
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg is not None:
        names.append(args.vararg.arg)
    names.extend(a.arg for a in args.kwonlyargs)
    if args.kwarg is not None:
        names.append(args.kwarg.arg)
    return tuple(names)


# Statement fields in the order LibCST's nodes hold them, so document order agrees.
_BLOCKS = ("body", "handlers", "orelse", "finalbody", "cases")


def collect_functions(tree: ast.Module, may_yield: bool = True) -> list[FunctionInfo]:
    """Every function of `tree` in depth-first document order of statements.

    `may_yield=False` says the source has no `yield` keyword at all (a keyword is never split or
    escaped, so a byte search decides it): no function is a generator, and the walk through
    every body looking for one, most of this function's cost, is skipped.
    """
    found: list[FunctionInfo] = []

    def walk(stmts: list[ast.stmt], scope: list[str], class_name: str | None) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                path = ".".join(scope)
                params = _params(stmt.args)
                found.append(
                    FunctionInfo(
                        index=len(found),
                        qualname=f"{path}.{stmt.name}" if path else stmt.name,
                        class_path=path,
                        name=stmt.name,
                        line=stmt.lineno,
                        kind=_kind(stmt, may_yield),
                        params=params,
                        keys=tuple(_mangle(p, class_name) for p in params),
                    )
                )
                walk(stmt.body, [*scope, stmt.name, "<locals>"], class_name)
            elif isinstance(stmt, ast.ClassDef):
                walk(stmt.body, [*scope, stmt.name], stmt.name)
            else:
                for field in _BLOCKS:
                    children = getattr(stmt, field, None)
                    if not children:
                        continue
                    for child in children:
                        if isinstance(child, ast.stmt):
                            walk([child], scope, class_name)
                        else:  # an except handler or a match case
                            walk(child.body, scope, class_name)

    walk(tree.body, [], None)
    return found


def reserved_uses(tree: ast.Module) -> list[tuple[str, int]]:
    """Identifiers in `tree` that start with the reserved prefix, with their lines."""
    hits: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        names: list[str | None] = []
        if isinstance(node, ast.Name):
            names.append(node.id)
        elif isinstance(node, ast.arg):
            names.append(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.alias):
            names.append(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
            names.append(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.extend(node.names)
        line = getattr(node, "lineno", 0)
        hits.extend((n, line) for n in names if n is not None and n.startswith(PREFIX))
    return hits

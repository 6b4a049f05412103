"""Phase 2: put the planned trampolines into one file's source (LibCST, formatting kept).

`inject(source, targets)` is the public entry; `Injector` walks statements only (a `def` can only
appear in a statement position), which is far cheaper than a full-tree transformer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import libcst as cst
import libcst.matchers as m

from instpy.build import trampoline
from instpy.build.errors import BuildError
from instpy.build.plan import PlannedTarget

_DOCSTRING = m.SimpleStatementLine(body=[m.Expr(value=m.SimpleString() | m.ConcatenatedString())])
# `from __future__ import x; import y` is a future line too: the header must come after it.
_FUTURE = m.SimpleStatementLine(
    body=[m.ImportFrom(module=m.Name("__future__")), m.ZeroOrMore()]
)
_SuiteFn = Callable[[cst.BaseSuite], cst.BaseSuite]
_N = TypeVar("_N", bound=cst.CSTNode)


def _is_docstring(stmt: cst.BaseStatement) -> bool:
    # Checked once per instrumented function: plain isinstance beats matchers on this hot path.
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    return isinstance(small, cst.Expr) and isinstance(
        small.value, cst.SimpleString | cst.ConcatenatedString
    )


def _ends(stmt: cst.BaseStatement) -> bool:
    """Whether control cannot fall off the end after `stmt` (a final return or raise)."""
    return isinstance(stmt, cst.SimpleStatementLine) and isinstance(
        stmt.body[-1], cst.Return | cst.Raise
    )


def is_rewritten(source: bytes) -> bool:
    """Whether `source` already carries trampolines (rewriting it again must change nothing)."""
    return trampoline.HEADER_IMPORT.encode() in source


def inject(source: bytes, targets: Sequence[PlannedTarget], path: str = "<source>") -> bytes:
    """Return `source` with a trampoline in every target; untouched if there is nothing to do."""
    if not targets or is_rewritten(source):
        return source
    module = cst.parse_module(source)
    injector = Injector(targets, path)
    body = injector.statements(module.body)
    missing = set(injector.by_index) - injector.done
    if missing:
        first = injector.by_index[min(missing)]
        raise BuildError(
            f"{path}:{first.line}: {first.fingerprint} is in the plan but not in the file "
            "(was the file edited after scanning?); re-run the build so scan and inject agree"
        )
    return module.with_changes(body=_with_header(body, targets)).bytes


def _with_header(
    body: Sequence[cst.BaseStatement], targets: Sequence[PlannedTarget]
) -> list[cst.BaseStatement]:
    """Insert the header after the module docstring and `from __future__` imports."""
    at = 0
    if body and m.matches(body[0], _DOCSTRING):
        at = 1
    while at < len(body) and m.matches(body[at], _FUTURE):
        at += 1
    lines = trampoline.Lines(tuple(trampoline.header(sorted(targets, key=lambda t: t.index))))
    rest = list(body[at:])
    if at == 0 and rest:
        # Comments above the first statement (a shebang or coding cookie among them) stay on top.
        first = rest[0]
        if isinstance(first, cst.SimpleStatementLine | cst.BaseCompoundStatement):
            lines = trampoline.Lines(lines.lines, first.leading_lines)
            rest[0] = first.with_changes(leading_lines=[])
    return [*body[:at], lines, *rest]


class Injector:
    """Walks a module's statements, counting `def`s in document order.

    State: `by_index` (planned targets by def index), `count` (defs seen so far), `done` (indices
    rewritten), `path` (for messages).
    """

    def __init__(self, targets: Sequence[PlannedTarget], path: str) -> None:
        self.by_index = {t.index: t for t in targets}
        self.count = 0
        self.done: set[int] = set()
        self.path = path

    def statements(self, stmts: Sequence[cst.BaseStatement]) -> list[cst.BaseStatement]:
        return [self.statement(s) for s in stmts]

    def statement(self, stmt: cst.BaseStatement) -> cst.BaseStatement:
        if isinstance(stmt, cst.FunctionDef):
            index = self.count
            self.count += 1
            body = self.suite(stmt.body)
            if body is not stmt.body:
                stmt = stmt.with_changes(body=body)
            target = self.by_index.get(index)
            if target is None:
                return stmt
            if target.fingerprint.rpartition(".")[2].rpartition(":")[2] != stmt.name.value:
                raise BuildError(
                    f"{self.path}:{target.line}: the plan expects {target.fingerprint} but finds "
                    f"def {stmt.name.value}; re-run the build so scan and inject agree"
                )
            self.done.add(index)
            return _instrument(stmt, target)
        if isinstance(stmt, cst.SimpleStatementLine):
            return stmt
        return _map_blocks(stmt, self.suite)

    def suite(self, suite: cst.BaseSuite) -> cst.BaseSuite:
        if isinstance(suite, cst.IndentedBlock):
            return _with_body(suite, self.statements(suite.body))
        return suite


def _with_body(node: _N, body: Sequence[cst.CSTNode]) -> _N:
    """`node` with `body`, or `node` itself when no statement changed.

    Building a node validates it, and instrument-all walks every block of every module: keeping
    the untouched ones as they are is most of the walk's cost saved.
    """
    if _same(node.body, body):  # type: ignore[attr-defined]
        return node
    return node.with_changes(body=body)


def _same(old: Sequence[object], new: Sequence[object]) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))


def _map_blocks(stmt: cst.BaseStatement, fn: _SuiteFn) -> cst.BaseStatement:
    """Apply `fn` to every block of a compound statement, in document order.

    Returns `stmt` itself when no block changed.
    """
    if isinstance(stmt, cst.Match):
        # A match statement has no body of its own: its blocks are the cases.
        cases = [_with_suite(c, fn) for c in stmt.cases]
        return stmt if _same(stmt.cases, cases) else stmt.with_changes(cases=cases)
    if isinstance(stmt, cst.SimpleStatementLine) or not hasattr(stmt, "body"):
        return stmt
    changes: dict[str, object] = {}
    body = fn(stmt.body)
    if body is not stmt.body:
        changes["body"] = body
    if isinstance(stmt, cst.Try | cst.TryStar):
        handlers = [_with_suite(h, fn) for h in stmt.handlers]
        if not _same(stmt.handlers, handlers):
            changes["handlers"] = handlers
        if stmt.finalbody is not None:
            finalbody = _with_suite(stmt.finalbody, fn)
            if finalbody is not stmt.finalbody:
                changes["finalbody"] = finalbody
    orelse = getattr(stmt, "orelse", None)
    new_orelse: object = orelse
    if isinstance(orelse, cst.If):
        new_orelse = _map_blocks(orelse, fn)
    elif isinstance(orelse, cst.Else):
        new_orelse = _with_suite(orelse, fn)
    if new_orelse is not orelse:
        changes["orelse"] = new_orelse
    # Try's `orelse` comes before `finalbody` in both trees; with_changes keeps field order.
    return stmt.with_changes(**changes) if changes else stmt


_B = TypeVar("_B", cst.ExceptHandler | cst.ExceptStarHandler, cst.Finally, cst.Else, cst.MatchCase)


def _with_suite(node: _B, fn: _SuiteFn) -> _B:
    body = fn(node.body)
    return node if body is node.body else node.with_changes(body=body)


def _indented(suite: cst.BaseSuite) -> cst.IndentedBlock:
    if isinstance(suite, cst.IndentedBlock):
        return suite
    # The only other suite: `def f(): return 1` on one line.
    small = suite.body if isinstance(suite, cst.SimpleStatementSuite) else ()
    return cst.IndentedBlock(
        body=[cst.SimpleStatementLine(body=small)],
        header=getattr(suite, "trailing_whitespace", cst.TrailingWhitespace()),
    )


def _instrument(func: cst.FunctionDef, target: PlannedTarget) -> cst.FunctionDef:
    block = _indented(func.body)
    body: list[cst.BaseStatement] = list(block.body)
    doc: list[cst.BaseStatement] = []
    if body and _is_docstring(body[0]):
        doc = [body.pop(0)]
    if target.on_exit:
        falls_through = not body or not _ends(body[-1])
        rewriter = _ReturnRewriter(target)
        body = [rewriter.statement(s) for s in body]
        if falls_through:
            body.append(trampoline.fall_through(target))
        body = [trampoline.guard(target, body)]
    new_body = [*doc, trampoline.prologue(target), *body]
    return func.with_changes(body=block.with_changes(body=new_body))


class _ReturnRewriter:
    """Rewrites the target's own `return`s; nested defs, classes and lambdas keep theirs."""

    def __init__(self, target: PlannedTarget) -> None:
        self.target = target
        self.guarded = 0  # enclosing `try`s with a `finally` and `with`s: code runs after a return

    def statement(self, stmt: cst.BaseStatement) -> cst.BaseStatement:
        if isinstance(stmt, cst.FunctionDef | cst.ClassDef):
            return stmt
        if isinstance(stmt, cst.SimpleStatementLine):
            return _with_body(stmt, self.small(stmt.body))
        guards = isinstance(stmt, cst.With) or (
            isinstance(stmt, cst.Try | cst.TryStar) and stmt.finalbody is not None)
        self.guarded += guards
        try:
            return _map_blocks(stmt, self.suite)
        finally:
            self.guarded -= guards

    def suite(self, suite: cst.BaseSuite) -> cst.BaseSuite:
        if isinstance(suite, cst.SimpleStatementSuite):
            return _with_body(suite, self.small(suite.body))
        if isinstance(suite, cst.IndentedBlock):
            return _with_body(suite, [self.statement(s) for s in suite.body])
        return suite

    def small(self, body: Sequence[cst.BaseSmallStatement]) -> list[cst.BaseSmallStatement]:
        out: list[cst.BaseSmallStatement] = []
        for small in body:
            if isinstance(small, cst.Return):
                out.append(trampoline.ReturnThrough(self.target, small, self.guarded > 0))
            else:
                out.append(small)
        return out

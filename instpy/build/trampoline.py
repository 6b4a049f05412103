"""The trampoline: the module header and the statements put into a target.

Instrument-all writes thousands of these, so the fixed statements are kept as text (`Lines`,
`Guard`) that LibCST writes out in place, indented like the block around them; only a rewritten
`return`, which wraps the user's own expression, is built from nodes.
Every name starts with the reserved prefix; the only module referenced is `_instpy_rt`, the
alias of `instpy.runtime.injected`. The shape is documented in docs/injection-rules.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst
from libcst._nodes.internal import CodegenState, visit_required, visit_sequence
from libcst._visitors import CSTVisitorT

from instpy.build.functions import ASYNC_GENERATOR, COROUTINE
from instpy.build.plan import PlannedTarget

RT = "_instpy_rt"
CALL = "_instpy_c"
EXC = "_instpy_e"
RESULT = "_instpy_r"
HEADER_IMPORT = f"import instpy.runtime.injected as {RT}"


def target_name(target: PlannedTarget) -> str:
    return f"_instpy_t{target.index}"


def is_async(target: PlannedTarget) -> bool:
    return target.kind in (COROUTINE, ASYNC_GENERATOR)


def _name(value: str) -> cst.Name:
    return cst.Name(value)


def _attr(base: str, *parts: str) -> cst.BaseExpression:
    node: cst.BaseExpression = cst.Name(base)
    for part in parts:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


def _call(func: cst.BaseExpression, *args: cst.BaseExpression) -> cst.Call:
    return cst.Call(func=func, args=[cst.Arg(value=a) for a in args])


def _assign(target: str | cst.BaseAssignTargetExpression, value: cst.BaseExpression) -> cst.Assign:
    node = cst.Name(target) if isinstance(target, str) else target
    return cst.Assign(targets=[cst.AssignTarget(target=node)], value=value)


def _is_none(name: str) -> cst.Comparison:
    return cst.Comparison(cst.Name(name), [cst.ComparisonTarget(cst.Is(), cst.Name("None"))])


def _runtime(target: PlannedTarget, helper: str, *args: cst.BaseExpression) -> cst.BaseExpression:
    """`_instpy_rt.helper(args)`, awaited (and the async twin) in async functions."""
    if is_async(target):
        return cst.Await(_call(_attr(RT, f"a{helper}"), *args))
    return _call(_attr(RT, helper), *args)


def _tuple(items: Sequence[str]) -> str:
    """A parenthesised tuple display, written the way LibCST writes a `Tuple` node."""
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _await(target: PlannedTarget, helper: str) -> str:
    return f"await {RT}.a{helper}" if is_async(target) else f"{RT}.{helper}"


@dataclass(frozen=True)
class Lines(cst.BaseStatement):
    """Generated statements kept as text: one `(depth, code)` per line.

    Instrument-all writes some 20 trampoline lines per function; as nodes they cost more to build
    (each one is validated) and to write out than the user's code around them. Code generation
    puts each line at the indentation of the block it sits in, plus `depth` of the module's
    default indent, and ends it with the module's newline, exactly as LibCST writes the same
    statements built as nodes (tests/build compare the two).
    """

    lines: tuple[tuple[int, str], ...]
    leading_lines: Sequence[cst.EmptyLine] = ()

    def _visit_and_replace_children(self, visitor: CSTVisitorT) -> Lines:
        return Lines(self.lines, visit_sequence(self, "leading_lines", self.leading_lines, visitor))

    def _codegen_impl(self, state: CodegenState) -> None:
        for empty in self.leading_lines:
            empty._codegen(state)
        _write(state, self.lines)


def _write(state: CodegenState, lines: Sequence[tuple[int, str]]) -> None:
    indent, newline = state.default_indent, state.default_newline
    for depth, code in lines:
        state.add_indent_tokens()
        state.add_token(indent * depth + code)
        # Its own token: Module drops the last one when the file has no final newline.
        state.add_token(newline)


@dataclass(frozen=True)
class Guard(cst.BaseStatement):
    """`try:` around the (rewritten) body, then the handler that shows exceptions to exit hooks."""

    body: cst.IndentedBlock
    handler: tuple[tuple[int, str], ...]

    def _visit_and_replace_children(self, visitor: CSTVisitorT) -> Guard:
        return Guard(visit_required(self, "body", self.body, visitor), self.handler)

    def _codegen_impl(self, state: CodegenState) -> None:
        state.add_indent_tokens()
        state.add_token("try:")
        self.body._codegen(state)  # its header ends the `try:` line
        _write(state, self.handler)


def header(targets: Sequence[PlannedTarget]) -> list[tuple[int, str]]:
    """The import and one `Target` per injected function, created at module import."""
    lines = [(0, HEADER_IMPORT)]
    for t in targets:
        args = ", ".join(
            [ascii(t.fingerprint), *(_tuple([ascii(v) for v in vs])
                                     for vs in (t.keys, t.on_enter, t.on_exit))]
        )
        lines.append((0, f"{target_name(t)} = {RT}.Target({args})"))
    return lines


def _skip_return(target: PlannedTarget) -> str:
    if target.kind == ASYNC_GENERATOR:
        return "return"  # an async generator cannot return a value
    return f"return {CALL}.return_value"


def prologue(target: PlannedTarget) -> Lines:
    """The statements before the body: one flag check, then the enter hooks when active."""
    tname = target_name(target)
    params = target.params
    enter = f"{CALL} = {_await(target, 'enter')}({tname}, {_tuple(params)})"
    names = f"{params[0]}," if len(params) == 1 else ", ".join(params)
    rebind = f"{names} = {CALL}.args"
    if target.on_exit:
        # With exit hooks `enter` always returns the call, which the exit path needs.
        lines = [
            (0, f"{CALL} = None"),
            (0, f"if {tname}.active:"),
            (1, enter),
            (1, f"if {CALL}.skipped:"),
            (2, _skip_return(target)),
        ]
        if params:
            lines.append((1, rebind))
        return Lines(tuple(lines))
    # Without exit hooks `enter` returns None unless the call must skip or rebind parameters.
    lines = [
        (0, f"if {tname}.active:"),
        (1, enter),
        (1, f"if {CALL} is not None:"),
        (2, f"if {CALL}.skipped:"),
        (3, _skip_return(target)),
    ]
    if params:
        lines.append((2, rebind))
    return Lines(tuple(lines))


def leave_value(target: PlannedTarget, value: cst.BaseExpression) -> cst.IfExp:
    """`value if _instpy_c is None else <leave>(_instpy_c, value)` (value must be a name)."""
    return cst.IfExp(
        test=_is_none(CALL), body=value, orelse=_runtime(target, "leave", _name(CALL), value)
    )


def rewrite_return(target: PlannedTarget, ret: cst.Return) -> list[cst.BaseSmallStatement]:
    """One of the target's own `return` statements, routed through the exit hooks."""
    if target.kind == ASYNC_GENERATOR:
        # Nothing to return: just let the exit hooks see the end (they may still raise).
        notify = cst.BooleanOperation(
            left=_is_none(CALL), operator=cst.Or(),
            right=_runtime(target, "leave", _name(CALL), _name("None")),
        )
        return [cst.Expr(notify), ret]
    if ret.value is None:
        return [ret.with_changes(value=leave_value(target, _name("None")),
                                 whitespace_after_return=cst.SimpleWhitespace(" "))]
    # Bind first: the value is evaluated once and never re-parenthesised or duplicated.
    # `return(x)` has no space after the keyword; the new value needs one.
    return [
        _assign(RESULT, ret.value),
        ret.with_changes(
            value=leave_value(target, _name(RESULT)),
            whitespace_after_return=cst.SimpleWhitespace(" "),
        ),
    ]


def fall_through(target: PlannedTarget) -> cst.SimpleStatementLine:
    """Appended to a body that can end without `return`."""
    return cst.SimpleStatementLine(body=rewrite_return(target, cst.Return(value=None)))


def guard(target: PlannedTarget, body: Sequence[cst.BaseStatement]) -> Guard:
    """`try: body` with one handler that shows the exception to the exit hooks."""
    handler = (
        (0, f"except BaseException as {EXC}:"),
        (1, f"if {CALL} is None or {_await(target, 'fail')}({CALL}, {EXC}):"),
        (2, "raise"),
        (1, _skip_return(target)),
    )
    return Guard(cst.IndentedBlock(body=list(body)), handler)

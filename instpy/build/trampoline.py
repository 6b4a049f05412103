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
from libcst._nodes.internal import (
    CodegenState,
    visit_required,
    visit_sequence,
)
from libcst._visitors import CSTVisitorT

from instpy.build.functions import ASYNC_GENERATOR, COROUTINE
from instpy.build.plan import PlannedTarget

RT = "_instpy_rt"
CALL = "_instpy_c"
EXC = "_instpy_e"
RESULT = "_instpy_r"
KEPT = "_instpy_k"
HEADER_IMPORT = f"import instpy.runtime.injected as {RT}"


def target_name(target: PlannedTarget) -> str:
    return f"_instpy_t{target.index}"


def is_async(target: PlannedTarget) -> bool:
    return target.kind in (COROUTINE, ASYNC_GENERATOR)


def _tuple(items: Sequence[str]) -> str:
    """A parenthesised tuple display, written the way LibCST writes a `Tuple` node."""
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


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


def _via(target: PlannedTarget, method: str) -> str:
    """`_instpy_tN.method`, or `await _instpy_tN.amethod` in coroutines and async generators."""
    tname = target_name(target)
    return f"await {tname}.a{method}" if is_async(target) else f"{tname}.{method}"


def prologue(target: PlannedTarget) -> Lines:
    """The statements before the body: one flag check, then the target's `enter` when active."""
    tname = target_name(target)
    params = target.params
    enter = f"{CALL} = {_via(target, 'enter')}({_tuple(params)})"
    names = f"{params[0]}," if len(params) == 1 else ", ".join(params)
    rebind = f"{names} = {CALL}.args"
    if target.on_exit:
        # With exit hooks `enter` returns what the exit path hands back to the target: a
        # HookCall (which may skip the body or replace arguments), or a governor's token.
        lines = [
            (0, f"{CALL} = None"),
            (0, f"if {tname}.active:"),
            (1, enter),
            (1, f"if {CALL}.__class__ is {RT}.HookCall:"),
            (2, f"if {CALL}.skipped:"),
            (3, _skip_return(target)),
        ]
        if params:
            lines.append((2, rebind))
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


# A `return` inside a `try` with a `finally`, or a `with`, is followed by user code that may
# return again or raise into the handler: it takes the call out of `_instpy_c` before leaving,
# so the exit path runs once. Other returns skip that (an idle call pays for every statement).
_TAKE = f"{KEPT}, {CALL} = {CALL}, None; "


def _leave(target: PlannedTarget, value: str, call: str = CALL) -> str:
    """`value if call is None else _instpy_tN.leave(call, value)` (value must be a name)."""
    return f"{value} if {call} is None else {_via(target, 'leave')}({call}, {value})"


@dataclass(frozen=True)
class ReturnThrough(cst.BaseSmallStatement):
    """One of the target's own `return` statements, routed through the exit hooks.

    Written as `_instpy_r = <value>; return <leave _instpy_r>` on the original line (the value is
    evaluated once and never re-parenthesised or duplicated), `return <leave None>` without a
    value, and `<leave None>; return` in an async generator, which cannot return a value. With
    `take`, `_instpy_k, _instpy_c = _instpy_c, None; ` comes before the `return` (before the
    leave in an async generator) and the leave uses `_instpy_k`. The original's `;` separator,
    if any, is kept.
    """

    target: PlannedTarget
    ret: cst.Return  # the original
    take: bool = False  # user code can run after it (inside a `try`/`finally` or a `with`)

    def _visit_and_replace_children(self, visitor: CSTVisitorT) -> ReturnThrough:
        return ReturnThrough(self.target, visit_required(self, "ret", self.ret, visitor),
                             self.take)

    def _codegen_impl(self, state: CodegenState, default_semicolon: bool = False) -> None:
        ret = self.ret
        target = self.target
        take, call = (_TAKE, KEPT) if self.take else ("", CALL)
        if target.kind == ASYNC_GENERATOR:
            # Nothing to return: just let the exit hooks see the end (they may still raise).
            state.add_token(f"{take}{call} is None or {_via(target, 'leave')}({call}, None); ")
            ret._codegen(state, default_semicolon=default_semicolon)
            return
        if ret.value is None:
            state.add_token(f"{take}return {_leave(target, 'None', call)}")
        else:
            state.add_token(f"{RESULT} = ")
            ret.value._codegen(state)
            state.add_token(f"; {take}return {_leave(target, RESULT, call)}")
        if isinstance(ret.semicolon, cst.Semicolon):
            ret.semicolon._codegen(state)
        elif default_semicolon:
            state.add_token("; ")


def fall_through(target: PlannedTarget) -> Lines:
    """Appended to a body that can end without `return`."""
    if target.kind == ASYNC_GENERATOR:
        return Lines(((0, f"{CALL} is None or {_via(target, 'leave')}({CALL}, None); return"),))
    return Lines(((0, f"return {_leave(target, 'None')}"),))


def guard(target: PlannedTarget, body: Sequence[cst.BaseStatement]) -> Guard:
    """`try: body` with one handler that shows the exception to the exit hooks."""
    handler = (
        (0, f"except BaseException as {EXC}:"),
        (1, f"if {CALL} is None or {_via(target, 'fail')}({CALL}, {EXC}):"),
        (2, "raise"),
        (1, _skip_return(target)),
    )
    return Guard(cst.IndentedBlock(body=list(body)), handler)

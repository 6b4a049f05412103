"""LibCST nodes of the trampoline: the module header and the statements put into a target.

Built directly as nodes (no template parsing) because instrument-all builds thousands of them.
Every name starts with the reserved prefix; the only module referenced is `_instpy_rt`, the
alias of `instpy.runtime.injected`. The shape is documented in docs/injection-rules.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

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


def _strings(values: Sequence[str]) -> cst.Tuple:
    # ascii() keeps the header encodable in whatever encoding the file declares.
    return cst.Tuple([cst.Element(cst.SimpleString(ascii(v))) for v in values])


def _line(*small: cst.BaseSmallStatement) -> cst.SimpleStatementLine:
    return cst.SimpleStatementLine(body=list(small))


def _assign(target: str | cst.BaseAssignTargetExpression, value: cst.BaseExpression) -> cst.Assign:
    node = cst.Name(target) if isinstance(target, str) else target
    return cst.Assign(targets=[cst.AssignTarget(target=node)], value=value)


def _is_none(name: str) -> cst.Comparison:
    return cst.Comparison(cst.Name(name), [cst.ComparisonTarget(cst.Is(), cst.Name("None"))])


def _if(test: cst.BaseExpression, *body: cst.BaseStatement) -> cst.If:
    return cst.If(test=test, body=cst.IndentedBlock(body=list(body)))


def _runtime(target: PlannedTarget, helper: str, *args: cst.BaseExpression) -> cst.BaseExpression:
    """`_instpy_rt.helper(args)`, awaited (and the async twin) in async functions."""
    if is_async(target):
        return cst.Await(_call(_attr(RT, f"a{helper}"), *args))
    return _call(_attr(RT, helper), *args)


def header(targets: Sequence[PlannedTarget]) -> list[cst.SimpleStatementLine]:
    """The import and one `Target` per injected function, created at module import."""
    runtime_module = cst.Attribute(
        value=cst.Attribute(value=cst.Name("instpy"), attr=cst.Name("runtime")),
        attr=cst.Name("injected"),
    )
    alias = cst.ImportAlias(name=runtime_module, asname=cst.AsName(_name(RT)))
    lines = [_line(cst.Import(names=[alias]))]
    for t in targets:
        args: list[cst.BaseExpression] = [cst.SimpleString(ascii(t.fingerprint)), _strings(t.keys)]
        args += [_strings(t.on_enter), _strings(t.on_exit)]
        lines.append(_line(_assign(target_name(t), _call(_attr(RT, "Target"), *args))))
    return lines


def _skip_return(target: PlannedTarget) -> cst.SimpleStatementLine:
    if target.kind == ASYNC_GENERATOR:
        return _line(cst.Return(value=None))  # an async generator cannot return a value
    return _line(cst.Return(value=_attr(CALL, "return_value")))


def _rebind(target: PlannedTarget) -> cst.SimpleStatementLine:
    names = cst.Tuple([cst.Element(cst.Name(p)) for p in target.params], lpar=[], rpar=[])
    return _line(_assign(names, _attr(CALL, "args")))


def prologue(target: PlannedTarget) -> list[cst.BaseStatement]:
    """The statements before the body: one flag check, then the enter hooks when active."""
    tname = target_name(target)
    values = cst.Tuple([cst.Element(cst.Name(p)) for p in target.params])
    enter = _line(_assign(CALL, _runtime(target, "enter", _name(tname), values)))
    skip = _if(_attr(CALL, "skipped"), _skip_return(target))
    if target.on_exit:
        # With exit hooks `enter` always returns the call, which the exit path needs.
        active_body: list[cst.BaseStatement] = [enter, skip]
        if target.params:
            active_body.append(_rebind(target))
        return [_line(_assign(CALL, _name("None"))), _if(_attr(tname, "active"), *active_body)]
    # Without exit hooks `enter` returns None unless the call must skip or rebind parameters.
    not_none = cst.Comparison(cst.Name(CALL), [cst.ComparisonTarget(cst.IsNot(), cst.Name("None"))])
    acted = [skip, _rebind(target)] if target.params else [skip]
    return [_if(_attr(tname, "active"), enter, _if(not_none, *acted))]


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
    return _line(*rewrite_return(target, cst.Return(value=None)))


def guard(target: PlannedTarget, body: Sequence[cst.BaseStatement]) -> cst.Try:
    """`try: body` with one handler that shows the exception to the exit hooks."""
    failed = cst.BooleanOperation(
        left=_is_none(CALL), operator=cst.Or(),
        right=_runtime(target, "fail", _name(CALL), _name(EXC)),
    )
    handler = cst.ExceptHandler(
        type=_name("BaseException"),
        name=cst.AsName(_name(EXC)),
        body=cst.IndentedBlock(body=[_if(failed, _line(cst.Raise())), _skip_return(target)]),
    )
    return cst.Try(body=cst.IndentedBlock(body=list(body)), handlers=[handler])

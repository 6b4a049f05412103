"""Reading a call's arguments from its syntax, the way the callee would bind them."""

from __future__ import annotations

import ast


def arg(call: ast.Call, index: int, name: str) -> ast.expr | None:
    """The argument bound to parameter `name` at position `index`: keyword first, then
    positional, unless a `*args` before that position makes the position unknowable."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    if index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[:index]):
        return call.args[index]
    return None


def kwarg(call: ast.Call, name: str) -> ast.expr | None:
    """A keyword-only argument."""
    return arg(call, 1 << 30, name)

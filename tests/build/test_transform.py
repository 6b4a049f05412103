"""Before/after source pairs of inject, and the formatting cases it must keep."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from buildtest_helpers import match_all, rewrite, rules_file

from instpy.build.errors import CollisionError
from instpy.build.rules import RuleSet

ENTER_ONLY_BEFORE = '''\
def create(self, item, qty=1):
    """Create an order."""
    return item * qty
'''

ENTER_ONLY_AFTER = '''\
import instpy.runtime.injected as _instpy_rt
_instpy_t0 = _instpy_rt.Target('mod:create', ('self', 'item', 'qty'), ('h:enter',), ())
def create(self, item, qty=1):
    """Create an order."""
    if _instpy_t0.active:
        _instpy_c = _instpy_t0.enter((self, item, qty))
        if _instpy_c is not None:
            if _instpy_c.skipped:
                return _instpy_c.return_value
            self, item, qty = _instpy_c.args
    return item * qty
'''

WITH_EXIT_BEFORE = '''\
def pick(x):
    if x:
        return x, 1
    print("none")
'''

WITH_EXIT_AFTER = '''\
import instpy.runtime.injected as _instpy_rt
_instpy_t0 = _instpy_rt.Target('mod:pick', ('x',), ('h:enter',), ('h:exit',))
def pick(x):
    _instpy_c = None
    if _instpy_t0.active:
        _instpy_c = _instpy_t0.enter((x,))
        if _instpy_c.__class__ is _instpy_rt.HookCall:
            if _instpy_c.skipped:
                return _instpy_c.return_value
            x, = _instpy_c.args
    try:
        if x:
            _instpy_r = x, 1; return _instpy_r if _instpy_c is None else _instpy_t0.leave(_instpy_c, _instpy_r)
        print("none")
        return None if _instpy_c is None else _instpy_t0.leave(_instpy_c, None)
    except BaseException as _instpy_e:
        if _instpy_c is None or _instpy_t0.fail(_instpy_c, _instpy_e):
            raise
        return _instpy_c.return_value
'''  # noqa: E501 (generated code keeps each return on its own line)


def _rules(tmp_path: Path, function: str, exit_hook: bool) -> RuleSet:
    exit_line = "  on_exit: h:exit\n" if exit_hook else ""
    rule = f"- name: r\n  module: mod\n  function: {function}\n  on_enter: h:enter\n"
    return rules_file(tmp_path, rule + exit_line)


@pytest.mark.parametrize(
    ("before", "after", "function", "exit_hook"),
    [
        (ENTER_ONLY_BEFORE, ENTER_ONLY_AFTER, "create", False),
        (WITH_EXIT_BEFORE, WITH_EXIT_AFTER, "pick", True),
    ],
    ids=["enter-only", "with-exit"],
)
def test_pairs(tmp_path: Path, before: str, after: str, function: str, exit_hook: bool) -> None:
    rules = _rules(tmp_path, function, exit_hook)
    out = rewrite(tmp_path, before, rules)
    assert out.decode() == after
    assert rewrite(tmp_path, out, rules) == out  # idempotent


def test_no_match_is_byte_identical(tmp_path: Path) -> None:
    source = "def other():\n    return 1  # comment\n"
    assert rewrite(tmp_path, source, _rules(tmp_path, "create", True)) == source.encode()


@pytest.mark.parametrize("source", ["", "\n", "# only a comment\n", "x = 1\n"])
def test_empty_and_function_free_files(tmp_path: Path, source: str) -> None:
    assert rewrite(tmp_path, source, match_all(tmp_path)) == source.encode()


def test_opt_out_marker(tmp_path: Path) -> None:
    source = "# instpy: skip-file\ndef f():\n    return 1\n"
    assert rewrite(tmp_path, source, match_all(tmp_path)) == source.encode()


def test_idempotent_on_constructs(tmp_path: Path) -> None:
    from buildtest_helpers import FIXTURES

    data = (FIXTURES / "constructs.py").read_bytes()
    once = rewrite(tmp_path, data, match_all(tmp_path))
    assert rewrite(tmp_path, once, match_all(tmp_path)) == once


def test_docstring_future_and_comments_stay_first(tmp_path: Path) -> None:
    source = (
        '#!/usr/bin/env python\n# licence\n"""Doc."""\nfrom __future__ import annotations\n'
        "import os\n\ndef f():\n    return os\n"
    )
    out = rewrite(tmp_path, source, match_all(tmp_path)).decode()
    lines = out.splitlines()
    assert lines[:4] == ["#!/usr/bin/env python", "# licence", '"""Doc."""',
                         "from __future__ import annotations"]
    assert lines[4] == "import instpy.runtime.injected as _instpy_rt"
    tree = ast.parse(out)
    assert ast.get_docstring(tree) == "Doc."


def test_shebang_and_coding_cookie_stay_on_top_without_docstring(tmp_path: Path) -> None:
    source = "# -*- coding: latin-1 -*-\n# caf\xe9\nimport os\ndef f():\n    return 'caf\xe9'\n"
    out = rewrite(tmp_path, source.encode("latin-1"), match_all(tmp_path))
    assert out.startswith(b"# -*- coding: latin-1 -*-\n# caf\xe9\nimport instpy")
    assert "_instpy_r = 'caf\xe9'" in out.decode("latin-1")
    compile(out, "mod.py", "exec")


def test_crlf_kept(tmp_path: Path) -> None:
    source = "def f(a):\r\n    if a:\r\n        return 1\r\n    return 2\r\n"
    out = rewrite(tmp_path, source, match_all(tmp_path))
    assert b"\n" not in out.replace(b"\r\n", b"")
    compile(out, "mod.py", "exec")


def test_tabs_kept(tmp_path: Path) -> None:
    source = "class C:\n\tdef f(self, a):\n\t\tif a:\n\t\t\treturn 1\n\t\treturn 2\n"
    out = rewrite(tmp_path, source, match_all(tmp_path)).decode()
    assert "\t\t_instpy_c = None" in out and "    " not in out
    compile(out, "mod.py", "exec")


def test_one_line_def_and_suites(tmp_path: Path) -> None:
    source = "def f(a): return a\ndef g(a):\n    if a: return 1; x = 2\n    while a: return 3\n"
    out = rewrite(tmp_path, source, match_all(tmp_path))
    compile(out, "mod.py", "exec")
    # f: 1 return; g: 2 returns + fall-through
    assert out.count(b"_instpy_t0.leave(") + out.count(b"_instpy_t1.leave(") == 4


def test_emitted_code_is_python_3_10(tmp_path: Path) -> None:
    from buildtest_helpers import FIXTURES

    out = rewrite(tmp_path, (FIXTURES / "constructs.py").read_bytes(), match_all(tmp_path))
    ast.parse(out, feature_version=(3, 10))


def test_reserved_prefix_collision_is_a_clear_error(tmp_path: Path) -> None:
    source = "def f():\n    _instpy_mine = 1\n    return _instpy_mine\n"
    with pytest.raises(CollisionError, match=r"mod\.py:2: '_instpy_mine' uses the prefix"):
        rewrite(tmp_path, source, match_all(tmp_path))


def test_nested_returns_untouched(tmp_path: Path) -> None:
    rules = _rules(tmp_path, "outer", True)
    source = (
        "def outer():\n    def inner():\n        return 1\n    f = lambda: 2\n"
        "    return inner() + f()\n"
    )
    out = rewrite(tmp_path, source, rules).decode()
    assert "        return 1\n" in out
    assert out.count("_instpy_t0.leave(") == 1


def test_return_without_space(tmp_path: Path) -> None:
    source = "def f(a):\n    if a: return(1)\n    return'x'\n"
    out = rewrite(tmp_path, source, match_all(tmp_path))
    compile(out, "mod.py", "exec")
    assert b"_instpy_r = (1); return _instpy_r if" in out


def test_returns_followed_by_user_code_leave_once(tmp_path: Path) -> None:
    # After a return inside a `with` or a `try` with a `finally`, user code still runs and may
    # return again or raise into the handler: those returns take the call before leaving.
    source = (
        "def f(a):\n    with a:\n        return 1\n"
        "def g(a):\n    try:\n        if a: return 2\n    finally:\n        return 3\n"
        "def h(a):\n    try:\n        return 4\n    except ValueError:\n        return 5\n"
    )
    out = rewrite(tmp_path, source, match_all(tmp_path)).decode()
    compile(out, "mod.py", "exec")
    take = "_instpy_k, _instpy_c = _instpy_c, None; return _instpy_r if _instpy_k is None"
    assert out.count(take) == 3  # f's, and g's two; h's returns are followed by nothing
    assert out.count("_instpy_t2.leave(_instpy_c, _instpy_r)") == 2


def test_future_line_with_other_imports(tmp_path: Path) -> None:
    source = '"""Doc."""\nfrom __future__ import annotations; import os\ndef f():\n    return os\n'
    out = rewrite(tmp_path, source, match_all(tmp_path))
    compile(out, "mod.py", "exec")
    assert out.splitlines()[2] == b"import instpy.runtime.injected as _instpy_rt"


ASYNC_BEFORE = '''\
async def c(x, /, y):
    await x
    if y: return; z = 1
async def g(a):
    yield a
    return'''  # no final newline: the last generated line must keep its own

ASYNC_AFTER = '''\
import instpy.runtime.injected as _instpy_rt
_instpy_t0 = _instpy_rt.Target('mod:c', ('x', 'y'), ('h:enter',), ('h:exit',))
_instpy_t1 = _instpy_rt.Target('mod:g', ('a',), ('h:enter',), ('h:exit',))
async def c(x, /, y):
    _instpy_c = None
    if _instpy_t0.active:
        _instpy_c = await _instpy_t0.aenter((x, y))
        if _instpy_c.__class__ is _instpy_rt.HookCall:
            if _instpy_c.skipped:
                return _instpy_c.return_value
            x, y = _instpy_c.args
    try:
        await x
        if y: return None if _instpy_c is None else await _instpy_t0.aleave(_instpy_c, None); z = 1
        return None if _instpy_c is None else await _instpy_t0.aleave(_instpy_c, None)
    except BaseException as _instpy_e:
        if _instpy_c is None or await _instpy_t0.afail(_instpy_c, _instpy_e):
            raise
        return _instpy_c.return_value
async def g(a):
    _instpy_c = None
    if _instpy_t1.active:
        _instpy_c = await _instpy_t1.aenter((a,))
        if _instpy_c.__class__ is _instpy_rt.HookCall:
            if _instpy_c.skipped:
                return
            a, = _instpy_c.args
    try:
        yield a
        _instpy_c is None or await _instpy_t1.aleave(_instpy_c, None); return
    except BaseException as _instpy_e:
        if _instpy_c is None or await _instpy_t1.afail(_instpy_c, _instpy_e):
            raise
        return'''


def test_async_pair_without_final_newline(tmp_path: Path) -> None:
    rule = "- {name: r, match: regex, module: mod, function: 'c|g', on_enter: h:enter, "
    rules = rules_file(tmp_path, rule + "on_exit: h:exit}\n")
    out = rewrite(tmp_path, ASYNC_BEFORE, rules)
    assert out.decode() == ASYNC_AFTER


def test_no_params_enter_only(tmp_path: Path) -> None:
    out = rewrite(tmp_path, "def f():\n  return 1\n", _rules(tmp_path, "f", exit_hook=False))
    assert out.decode().splitlines()[2:] == [
        "def f():",
        "  if _instpy_t0.active:",
        "    _instpy_c = _instpy_t0.enter(())",  # the module's indent: 2 spaces
        "    if _instpy_c is not None:",
        "      if _instpy_c.skipped:",
        "        return _instpy_c.return_value",
        "  return 1",
    ]

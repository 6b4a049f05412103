"""Method-level governance through the injected trampoline: the governor path.

A function rewritten by the real build with the method hooks, imported, and governed by the
process's engine (rules swapped in with `load_text`). The governor answers the handle's token
straight to generated code; these tests check what that must keep: blocking with a value or an
exception, exactly one exit per admitted call, hot parameters read by name, switching on and off
with the rules, coroutines and generators, fail open, and targets that also carry other hooks.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from instpy.build.pipeline import run
from instpy.build.rules import load_rules
from instpy.runtime import injected
from instpy.runtime.governance import BlockedError, engine
from instpy.runtime.hooks import method

_names = itertools.count()

SOURCE = """\
import asyncio
import contextlib

calls = []

def nest(uid, depth=1):
    calls.append(uid)
    return depth if depth == 1 else nest(uid if depth % 2 else "other", depth - 1) + depth

def boom(uid):
    raise ValueError(uid)

def returns_twice(uid):
    try:
        return "first"
    finally:
        return "second"

@contextlib.contextmanager
def failing_exit():
    yield
    raise KeyError("raised by __exit__ after the return")

def exit_raises(uid):
    with failing_exit():
        return uid

def numbers(uid):
    yield uid
    yield uid
    return "done"

async def fetch(uid, depth=1):
    await asyncio.sleep(0)
    return depth if depth == 1 else await fetch(uid, depth - 1) + depth

def mixed(uid):
    return uid

def enter_only(uid):
    return uid
"""


def _rules(module: str) -> str:
    hooks = f"  on_enter: {method.ENTER}\n  on_exit: {method.EXIT}\n"
    return (f"- name: governed\n  match: regex\n  module: {module}\n"
            f"  function: '(?!mixed|enter_only).*'\n{hooks}"
            f"- name: enter-only\n  module: {module}\n  function: enter_only\n"
            f"  on_enter: {method.ENTER}\n"
            f"- name: mixed-method\n  module: {module}\n  function: mixed\n{hooks}"
            f"- name: mixed-other\n  module: {module}\n  function: mixed\n"
            f"  on_enter: {module}_seen:enter\n")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[types.ModuleType]:
    """SOURCE built with the method hooks under a fresh module name, imported."""
    name = f"instpy_t_shop{next(_names)}"
    seen = types.ModuleType(f"{name}_seen")
    seen.calls = []  # type: ignore[attr-defined]
    seen.enter = lambda call: seen.calls.append(call.arg("uid"))  # type: ignore[attr-defined]
    sys.modules[seen.__name__] = seen
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{name}.py").write_text(SOURCE)
    (tmp_path / "rules.yaml").write_text(_rules(name))
    out = run(src, load_rules([tmp_path / "rules.yaml"])).outputs[f"{name}.py"]
    built = tmp_path / "built"
    built.mkdir()
    (built / f"{name}.py").write_bytes(out)
    sys.path.insert(0, str(built))
    try:
        importlib.invalidate_caches()
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(built))
    yield module
    engine().load_text("rules: []\n", "test.yaml")
    del sys.modules[seen.__name__]


def _govern(shop: types.ModuleType, rules: str) -> None:
    # Resource names are the fingerprints: `<module>:<function>`.
    engine().load_text(rules.replace("MOD", shop.__name__), "test.yaml")


def _target(shop: types.ModuleType, function: str) -> injected.Target:
    (target,) = injected.targets(f"{shop.__name__}:{function}")
    return target


def _totals(shop: types.ModuleType, function: str) -> tuple[int, int, int]:
    passed, completed, errors, _ = engine().statistics().stats(
        f"{shop.__name__}:{function}").totals()
    return passed, completed, errors


def test_a_target_no_rule_names_is_switched_off_and_back_on(shop: types.ModuleType) -> None:
    assert shop.nest("u") == 1  # the first call resolves the hooks and installs the governor
    target = _target(shop, "nest")
    assert target.governor is not None and not target.active
    _govern(shop, 'rules:\n  - {resource: "MOD:nest", concurrency: {max: 5}}\n')
    assert target.active
    engine().load_text("rules: []\n", "test.yaml")
    assert not target.active


def test_blocked_call_returns_the_fallback_value_without_running(shop: types.ModuleType) -> None:
    shop.nest("u")
    _govern(shop, 'rules:\n  - resource: "MOD:nest"\n    concurrency: {max: 1}\n'
                  '    fallback: {value: 100}\n')
    shop.calls.clear()
    # The nested call finds the outer one in flight: it is answered 100 and never runs.
    assert shop.nest("u", 2) == 100 + 2
    assert shop.calls == ["u"]
    assert _totals(shop, "nest")[:2] == (1, 1)


def test_blocked_call_raises_the_fallback_exception(shop: types.ModuleType) -> None:
    shop.nest("u")
    _govern(shop, 'rules:\n  - resource: "MOD:nest"\n    concurrency: {max: 1}\n')
    with pytest.raises(BlockedError):
        shop.nest("u", 2)
    assert shop.nest("u") == 1  # the outer call's slot was given back


def test_each_admitted_call_exits_once(shop: types.ModuleType) -> None:
    # The first calls install the governors.
    with pytest.raises(ValueError):
        shop.boom("u")
    shop.returns_twice("u")
    with pytest.raises(KeyError):
        shop.exit_raises("u")
    rules = "".join(f'  - {{resource: "MOD:{f}", concurrency: {{max: 1}}}}\n'
                    for f in ("boom", "returns_twice", "exit_raises"))
    _govern(shop, "rules:\n" + rules)
    for _ in range(3):
        with pytest.raises(ValueError):
            shop.boom("u")
        assert shop.returns_twice("u") == "second"
        with pytest.raises(KeyError):
            shop.exit_raises("u")
    assert _totals(shop, "boom") == (3, 3, 3)
    assert _totals(shop, "returns_twice") == (3, 3, 0)
    # The return left before __exit__ raised: that call completed once, without an error.
    assert _totals(shop, "exit_raises") == (3, 3, 0)
    for function in ("boom", "returns_twice", "exit_raises"):
        assert engine().statistics().stats(f"{shop.__name__}:{function}").inflight == 0


def test_hot_parameter_is_read_by_name(shop: types.ModuleType) -> None:
    shop.nest("u")
    _govern(shop, 'rules:\n  - resource: "MOD:nest"\n'
                  '    hot_param: {from: arg, name: uid, concurrency: 1}\n'
                  '    fallback: {value: 100}\n')
    assert _target(shop, "nest").governor.hot  # type: ignore[union-attr]
    shop.calls.clear()
    # An odd depth calls itself with the same value (blocked), an even one with "other".
    assert shop.nest("u", 3) == 3 + 100
    assert shop.calls == ["u"]
    assert shop.nest("u", 2) == 2 + 1
    assert shop.calls == ["u", "u", "other"]


def test_coroutines_and_generators(shop: types.ModuleType) -> None:
    shop.nest("u")
    _govern(shop, 'rules:\n  - resource: "MOD:fetch"\n    concurrency: {max: 1}\n'
                  '    fallback: {value: 100}\n'
                  '  - {resource: "MOD:numbers", concurrency: {max: 1}}\n')
    assert asyncio.run(shop.fetch("u", 2)) == 100 + 2
    assert asyncio.run(shop.fetch("u")) == 1
    gen = shop.numbers("u")
    assert next(gen) == "u"
    with pytest.raises(BlockedError):
        next(shop.numbers("u"))  # the first generator is still running
    assert list(gen) == ["u"]
    assert list(shop.numbers("v")) == ["v", "v"]
    half = shop.numbers("w")
    next(half)
    half.close()  # GeneratorExit reaches the exit path: the slot is given back
    assert list(shop.numbers("x")) == ["x", "x"]


def test_fail_open_when_the_handle_raises(shop: types.ModuleType) -> None:
    shop.nest("u")
    _govern(shop, 'rules:\n  - {resource: "MOD:nest", concurrency: {max: 5}}\n')
    gov: Any = _target(shop, "nest").governor

    class Broken:
        active = True

        def enter(self, lookup: object) -> object:
            raise RuntimeError("enter is broken")

        def exit(self, token: object, error: object) -> None:
            raise RuntimeError("exit is broken")

    real = gov.res
    before = injected.hook_failures()
    try:
        gov.res = Broken()
        assert shop.nest("u", 2) == 3
        gov.res = real
        token = gov.enter(("u",))
        gov.res = Broken()
        assert gov.leave(token, "value") == "value"
    finally:
        gov.res = real
    after = injected.hook_failures()
    assert after[method.ENTER] - before.get(method.ENTER, 0) == 2
    assert after[method.EXIT] - before.get(method.EXIT, 0) == 1


def test_a_target_with_other_hooks_is_governed_through_its_call(
    shop: types.ModuleType,
) -> None:
    seen = sys.modules[f"{shop.__name__}_seen"]
    assert shop.mixed("a") == "a"
    target = _target(shop, "mixed")
    assert target.governor is None and target.active
    _govern(shop, 'rules:\n  - {resource: "MOD:mixed", concurrency: {max: 5}}\n')
    assert shop.mixed("b") == "b"
    assert _totals(shop, "mixed") == (1, 1, 0)
    _govern(shop, 'rules:\n  - resource: "MOD:mixed"\n    degrade: true\n'
                  '    fallback: {value: degraded}\n')
    assert shop.mixed("c") == "degraded"
    # The method hook runs first (rule order) and skips the call: later enter hooks do not run.
    assert seen.calls == ["a", "b"]


def test_a_target_with_only_the_enter_hook_never_holds_a_slot(shop: types.ModuleType) -> None:
    # No exit hook will hand its token back: each call is counted done at once, so a
    # concurrency limit of one still admits call after call.
    _govern(shop, 'rules:\n  - {resource: "MOD:enter_only", concurrency: {max: 1}}\n')
    assert [shop.enter_only(i) for i in range(3)] == [0, 1, 2]
    assert _totals(shop, "enter_only") == (3, 3, 0)
    assert engine().statistics().stats(f"{shop.__name__}:enter_only").inflight == 0

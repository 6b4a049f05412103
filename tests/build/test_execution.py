"""Rewritten code behaves exactly like the original, and the hooks see what they should."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest
from buildtest_helpers import (
    FIXTURES,
    HOOKS,
    Recorder,
    import_source,
    match_all,
    rewrite,
    rules_file,
)

from instpy.runtime import injected
from instpy.runtime.call import Call

CONSTRUCTS = (FIXTURES / "constructs.py").read_bytes()


@pytest.mark.parametrize("exit_hook", [True, False], ids=["enter+exit", "enter-only"])
def test_constructs_behave_identically(tmp_path: Path, recorder: Recorder, exit_hook: bool) -> None:
    original = import_source(tmp_path, CONSTRUCTS)
    data = rewrite(tmp_path, CONSTRUCTS, match_all(tmp_path, exit_hook=exit_hook))
    assert data != CONSTRUCTS
    rewritten = import_source(tmp_path, data)
    assert rewritten.scenarios() == original.scenarios()
    names = {event[1] for event in recorder.events}
    assert "mod:Child.hello" in names and "mod:nested_functions.<locals>.inner" in names
    assert "mod:Child.Inner.deep" in names and "mod:agen" in names
    enters = sum(1 for e in recorder.events if e[0] == "enter")
    exits = sum(1 for e in recorder.events if e[0] == "exit")
    assert exits == (enters if exit_hook else 0)


def test_function_objects_unchanged(tmp_path: Path, recorder: Recorder) -> None:
    original = import_source(tmp_path, CONSTRUCTS)
    rewritten = import_source(tmp_path, rewrite(tmp_path, CONSTRUCTS, match_all(tmp_path)))
    predicates = (
        inspect.iscoroutinefunction, inspect.isgeneratorfunction, inspect.isasyncgenfunction,
    )
    for name in ("plain", "posonly", "gen", "delegating", "coro", "agen", "early"):
        before, after = getattr(original, name), getattr(rewritten, name)
        assert inspect.signature(before) == inspect.signature(after)
        assert after.__name__ == before.__name__ and after.__qualname__ == before.__qualname__
        assert [p(after) for p in predicates] == [p(before) for p in predicates]
    assert isinstance(inspect.getattr_static(rewritten.Child, "make"), classmethod)
    assert isinstance(inspect.getattr_static(rewritten.Child, "static"), staticmethod)
    assert isinstance(inspect.getattr_static(rewritten.Child, "prop"), property)
    assert rewritten.Child.__doc__ == original.Child.__doc__


SHOP = """\
class OrderService:
    def create(self, item, qty=1, *extra, **options):
        return {"item": item, "qty": qty, "extra": extra, "options": options}

def numbers(n):
    yield from range(n)
    return "end"

async def fetch(x):
    return x + 1

async def stream(n):
    for i in range(n):
        yield i
"""


def _shop(tmp_path: Path, exit_hook: bool = True) -> Any:
    rules = match_all(tmp_path, exit_hook=exit_hook)
    return import_source(tmp_path, rewrite(tmp_path, SHOP, rules))


def test_hooks_see_params_and_return(tmp_path: Path, recorder: Recorder) -> None:
    shop = _shop(tmp_path)
    svc = shop.OrderService()
    assert svc.create("book", 2, "x", gift=True)["qty"] == 2
    enter, exit_ = recorder.events
    assert enter[1] == "mod:OrderService.create"
    assert enter[2] == {"self": svc, "item": "book", "qty": 2, "extra": ("x",),
                        "options": {"gift": True}}
    assert exit_[2]["item"] == "book" and exit_[3] is None


def test_param_replacement(tmp_path: Path, recorder: Recorder) -> None:
    recorder.on_enter = lambda call: call.params.update(qty=99, options={"k": 1})
    shop = _shop(tmp_path, exit_hook=False)
    assert shop.OrderService().create("book") == {
        "item": "book", "qty": 99, "extra": (), "options": {"k": 1}
    }


@pytest.mark.parametrize("exit_hook", [True, False], ids=["enter+exit", "enter-only"])
def test_param_replacement_without_params(tmp_path: Path, recorder: Recorder,
                                          exit_hook: bool) -> None:
    def enter(call: Call) -> None:
        call.replace("qty", 7)
        call.replace("item", call.arg("item") + "s")

    recorder.on_enter = enter
    shop = _shop(tmp_path, exit_hook=exit_hook)
    assert shop.OrderService().create("book")["item"] == "books"
    assert shop.OrderService().create("pen", 1)["qty"] == 7
    recorder.on_enter = lambda call: call.replace("nothing", 1)  # a hook failure: fail open
    assert shop.OrderService().create("cup", 3)["qty"] == 3


def test_skip_sync_generator_coroutine_asyncgen(tmp_path: Path, recorder: Recorder) -> None:
    recorder.on_enter = lambda call: call.skip("blocked")
    shop = _shop(tmp_path)
    assert shop.OrderService().create("book") == "blocked"
    gen = shop.numbers(3)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "blocked"  # yields nothing, returns the value
    assert asyncio.run(shop.fetch(1)) == "blocked"

    async def drain() -> list[int]:
        return [i async for i in shop.stream(3)]

    assert asyncio.run(drain()) == []
    assert not [e for e in recorder.events if e[0] == "exit"]  # a skipped call has no exit


def test_return_and_exception_replacement(tmp_path: Path, recorder: Recorder) -> None:
    shop = _shop(tmp_path)

    def replace(call: Call) -> None:
        if call.function.endswith("create"):
            call.return_value = "replaced"
        elif call.function.endswith("fetch"):
            call.exception = LookupError("from hook")

    recorder.on_exit = replace
    assert shop.OrderService().create("x") == "replaced"
    with pytest.raises(LookupError, match="from hook"):
        asyncio.run(shop.fetch(1))
    assert list(shop.numbers(2)) == [0, 1]


def test_exception_seen_and_cleared(tmp_path: Path, recorder: Recorder) -> None:
    source = "def boom(x):\n    raise ValueError(x)\n"
    mod = import_source(tmp_path, rewrite(tmp_path, source, match_all(tmp_path)))
    with pytest.raises(ValueError, match="1"):
        mod.boom(1)
    assert isinstance(recorder.events[-1][3], ValueError)

    def clear(call: Call) -> None:
        call.exception = None
        call.return_value = "recovered"

    recorder.on_exit = clear
    assert mod.boom(2) == "recovered"


def test_fail_open_when_hooks_raise(tmp_path: Path, recorder: Recorder) -> None:
    def bad(call: Call) -> None:
        call.skip("half-done")  # undone: a failing hook leaves no trace
        raise RuntimeError("governance bug")

    recorder.on_enter = bad
    recorder.on_exit = bad
    shop = _shop(tmp_path)
    before = injected.hook_failures()
    assert shop.OrderService().create("a")["item"] == "a"
    assert list(shop.numbers(2)) == [0, 1]
    after = injected.hook_failures()
    assert after[f"{HOOKS}:enter"] - before.get(f"{HOOKS}:enter", 0) == 2
    assert after[f"{HOOKS}:exit"] - before.get(f"{HOOKS}:exit", 0) == 2


def test_fail_open_when_hook_cannot_be_imported(tmp_path: Path) -> None:
    rules = rules_file(
        tmp_path,
        "- name: r\n  module: mod\n  function: f\n  on_enter: instpy_no_such_module:hook\n"
        "  on_exit: instpy_no_such_module:hook2\n",
    )
    mod = import_source(tmp_path, rewrite(tmp_path, "def f(x):\n    return x * 2\n", rules))
    assert mod.f(2) == 4 and mod.f(3) == 6
    assert injected.hook_failures()["instpy_no_such_module:hook"] == 1  # resolved once


def test_async_hooks_are_awaited_in_async_functions(tmp_path: Path, recorder: Recorder) -> None:
    seen: list[str] = []

    async def async_enter(call: Call) -> None:
        await asyncio.sleep(0)
        seen.append(call.function)
        call.params["x"] = 10

    recorder.on_enter = async_enter
    shop = _shop(tmp_path, exit_hook=False)
    assert asyncio.run(shop.fetch(1)) == 11
    assert seen == ["mod:fetch"]


def test_inactive_target_calls_no_hook(tmp_path: Path, recorder: Recorder) -> None:
    shop = _shop(tmp_path)
    created = [t for t in injected.targets("mod:OrderService.create") if t.names[0] == "self"]
    assert created
    for t in created:
        t.active = False
    assert shop.OrderService().create("a")["item"] == "a"
    assert recorder.events == []
    assert set(injected.targets("mod:fetch")) <= set(injected.all_targets())


def test_hook_failure_logged_once(
    tmp_path: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    rules = rules_file(
        tmp_path, "- name: r\n  module: mod\n  function: f\n  on_enter: instpy_t_missing:hook\n"
    )
    mod = import_source(tmp_path, rewrite(tmp_path, "def f(x):\n    return x\n", rules))
    with caplog.at_level("ERROR", logger="instpy.runtime"):
        assert [mod.f(i) for i in range(3)] == [0, 1, 2]
    logged = [r for r in caplog.records if "instpy_t_missing:hook" in r.getMessage()]
    assert len(logged) == 1 and "as if it were not injected" in logged[0].getMessage()


MATCHES = """\
def classify(value):
    match value:
        case 0:
            return "zero"
        case [x, *_]:
            def first():
                return x
            return first()
        case _:
            pass
    return "other"

def after(n):
    return n * 2
"""


@pytest.mark.parametrize("exit_hook", [True, False], ids=["enter+exit", "enter-only"])
def test_match_statements_are_walked(tmp_path: Path, recorder: Recorder, exit_hook: bool) -> None:
    # A def inside a case keeps the plan's numbering; a return inside a case reaches the exit
    # hooks like any other return.
    rewritten = import_source(tmp_path, rewrite(tmp_path, MATCHES,
                                                  match_all(tmp_path, exit_hook=exit_hook)))
    assert [rewritten.classify(v) for v in (0, [7, 8], "z")] == ["zero", 7, "other"]
    assert rewritten.after(4) == 8
    enters = [e[1] for e in recorder.events if e[0] == "enter"]
    exits = [e for e in recorder.events if e[0] == "exit"]
    assert enters.count("mod:classify") == 3 and "mod:classify.<locals>.first" in enters
    assert "mod:after" in enters
    if exit_hook:
        returned = [e[2] for e in exits if e[1] == "mod:classify"]
        assert returned == ["zero", 7, "other"]
    else:
        assert exits == []

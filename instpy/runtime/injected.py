"""The contract with generated code: everything an injected trampoline calls lives here.

Generated code imports this module once per file as `_instpy_rt` and creates one `Target` per
injected function at import time. Per call it reads `target.active`; only when that is True does
it call `enter`/`aenter`, and, when the target has exit hooks, `leave`/`aleave` on return and
`fail`/`afail` on an exception. These helpers never let a hook break the call: a hook that
raises, or that cannot be imported, is counted and logged once, and the call proceeds exactly as
if that hook did not exist (fail open).

Hooks are resolved lazily, by `module:callable`, on first use, so a hook module may import the
library it instruments without an import cycle. Imports only the standard library.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from instpy.runtime import activation
from instpy.runtime.call import Call

__all__ = [
    "Call",
    "Target",
    "aenter",
    "afail",
    "aleave",
    "all_targets",
    "enter",
    "fail",
    "hook_failures",
    "leave",
    "targets",
]

log = logging.getLogger("instpy.runtime")

HookFn = Callable[[Call], Any]

_lock = threading.Lock()
_by_fingerprint: dict[str, list[Target]] = {}
_all: list[Target] = []
_hooks: dict[str, _Hook] = {}
_failures: dict[str, int] = {}
_logged: set[str] = set()

# Decided once per process (deployment switch, license): when False every target stays inactive.
GOVERNING = activation.governing()


class _Hook:
    """One `module:callable` hook, shared by every target that names it; resolved on first use."""

    __slots__ = ("fn", "name", "state")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fn: HookFn | None = None
        self.state = "unresolved"  # -> "ready" | "broken"

    def get(self) -> HookFn | None:
        if self.fn is not None:
            return self.fn
        if self.state == "broken":
            return None
        return self._resolve()

    def _resolve(self) -> HookFn | None:
        module_name, _, attr_path = self.name.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr_path.split("."):
                obj = getattr(obj, part)
        except AttributeError as exc:
            spec = getattr(sys.modules.get(module_name), "__spec__", None)
            if getattr(spec, "_initializing", False):
                # The hook module is itself still importing (it imports the library we are
                # governing); try again on the next call instead of giving up for good.
                return None
            self._break(exc)
            return None
        except Exception as exc:
            self._break(exc)
            return None
        if not callable(obj):
            self._break(TypeError(f"{self.name} is a {type(obj).__name__}, not a callable"))
            return None
        self.fn = obj
        self.state = "ready"
        return self.fn

    def _break(self, exc: BaseException) -> None:
        self.state = "broken"
        _record_failure(self.name, exc, "cannot be imported; it is disabled")


def _hook(name: str) -> _Hook:
    with _lock:
        hook = _hooks.get(name)
        if hook is None:
            hook = _hooks[name] = _Hook(name)
        return hook


def _record_failure(name: str, exc: BaseException, what: str) -> None:
    with _lock:
        _failures[name] = _failures.get(name, 0) + 1
        first = name not in _logged
        _logged.add(name)
    if first:
        log.error(
            "instpy hook %s %s; the governed call proceeds as if it were not injected "
            "(logged once, counted in hook_failures())",
            name,
            what,
            exc_info=(type(exc), exc, exc.__traceback__),
        )


class Target:
    """One injected function. Generated code checks `active` and nothing else when it is False."""

    __slots__ = ("active", "enter_hooks", "exit_hooks", "fingerprint", "names")

    def __init__(
        self,
        fingerprint: str,
        names: tuple[str, ...],
        on_enter: tuple[str, ...] = (),
        on_exit: tuple[str, ...] = (),
    ) -> None:
        self.active = GOVERNING
        self.fingerprint = fingerprint
        self.names = names
        self.enter_hooks = tuple(_hook(h) for h in on_enter)
        # Exit hooks unwind in reverse order, like nested context managers.
        self.exit_hooks = tuple(_hook(h) for h in reversed(on_exit))
        with _lock:
            _by_fingerprint.setdefault(fingerprint, []).append(self)
            _all.append(self)

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"<instpy Target {self.fingerprint} {state}>"


def targets(fingerprint: str) -> list[Target]:
    """Every target created for `fingerprint` (`module:qualname`), in creation order."""
    with _lock:
        return list(_by_fingerprint.get(fingerprint, ()))


def all_targets() -> list[Target]:
    """Every target created in this process so far, in creation order."""
    with _lock:
        return list(_all)


def hook_failures() -> dict[str, int]:
    """How many times each hook (by `module:callable`) failed to import or raised."""
    with _lock:
        return dict(_failures)


# -- enter ---------------------------------------------------------------------------------


def _run_enter(hook: _Hook, call: Call) -> Any:
    fn = hook.get()
    if fn is None:
        return None
    try:
        return fn(call)
    except Exception as exc:
        _reset_enter(call)
        _record_failure(hook.name, exc, "raised in on_enter")
        return None


def _reset_enter(call: Call) -> None:
    call.params = dict(zip(call.target.names, call.args, strict=True))
    call.skipped = False
    call.return_value = None
    call.thrown = None


def _finish_enter(target: Target, call: Call) -> Call | None:
    thrown = call.thrown
    if thrown is not None:
        call.thrown = None  # no reference cycle through the traceback
        raise thrown  # an enter hook chose this answer (`call.throw`): not a hook failure
    changed = call._collect_args()
    # Without exit hooks generated code only needs the call when it must act on it.
    if call.skipped or changed or target.exit_hooks:
        return call
    return None


def enter(target: Target, values: tuple[Any, ...]) -> Call | None:
    """Run the enter hooks of a synchronous function; None means "run the body unchanged"."""
    call = Call(target, target.names, values)
    for hook in target.enter_hooks:
        result = _run_enter(hook, call)
        if result is not None and hasattr(result, "__await__"):
            _discard_awaitable(result)
            _reset_enter(call)
            _record_failure(hook.name, TypeError("async hook"), "is async on a sync function")
        if call.skipped:
            break
    return _finish_enter(target, call)


async def aenter(target: Target, values: tuple[Any, ...]) -> Call | None:
    """`enter` for coroutines and async generators: a hook may also be a coroutine function."""
    call = Call(target, target.names, values)
    for hook in target.enter_hooks:
        result = _run_enter(hook, call)
        if result is not None and hasattr(result, "__await__"):
            try:
                await result
            except Exception as exc:
                _reset_enter(call)
                _record_failure(hook.name, exc, "raised in on_enter")
        if call.skipped:
            break
    return _finish_enter(target, call)


def _discard_awaitable(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


# -- exit ----------------------------------------------------------------------------------


def _run_exit(hook: _Hook, call: Call, value: Any, exc: BaseException | None) -> Any:
    fn = hook.get()
    if fn is None:
        return None
    try:
        return fn(call)
    except Exception as error:
        call.return_value = value
        call.exception = exc
        _record_failure(hook.name, error, "raised in on_exit")
        return None


def _outcome(call: Call, exc: BaseException | None) -> bool:
    """After the exit hooks: True = re-raise `exc`; False = return `call.return_value`."""
    new = call.exception
    if new is exc:
        return exc is not None
    if new is None:
        return False
    raise new


def leave(call: Call, value: Any) -> Any:
    """The body returned `value`: run the exit hooks and return what the caller gets."""
    if call.left:
        return value
    call.left = True
    call.return_value = value
    for hook in call.target.exit_hooks:
        result = _run_exit(hook, call, value, None)
        if result is not None and hasattr(result, "__await__"):
            _discard_awaitable(result)
            call.return_value, call.exception = value, None
            _record_failure(hook.name, TypeError("async hook"), "is async on a sync function")
    _outcome(call, None)
    return call.return_value


def fail(call: Call, exc: BaseException) -> bool:
    """The body raised `exc`: run the exit hooks; True means generated code re-raises `exc`."""
    if call.left:
        return True
    call.left = True
    call.exception = exc
    for hook in call.target.exit_hooks:
        result = _run_exit(hook, call, None, exc)
        if result is not None and hasattr(result, "__await__"):
            _discard_awaitable(result)
            call.return_value, call.exception = None, exc
            _record_failure(hook.name, TypeError("async hook"), "is async on a sync function")
    return _outcome(call, exc)


async def _arun_exit(call: Call, value: Any, exc: BaseException | None) -> None:
    for hook in call.target.exit_hooks:
        result = _run_exit(hook, call, value, exc)
        if result is not None and hasattr(result, "__await__"):
            try:
                await result
            except Exception as error:
                call.return_value, call.exception = value, exc
                _record_failure(hook.name, error, "raised in on_exit")


async def aleave(call: Call, value: Any) -> Any:
    """`leave` for coroutines and async generators (exit hooks may be coroutine functions)."""
    if call.left:
        return value
    call.left = True
    call.return_value = value
    await _arun_exit(call, value, None)
    _outcome(call, None)
    return call.return_value


async def afail(call: Call, exc: BaseException) -> bool:
    """`fail` for coroutines and async generators."""
    if call.left:
        return True
    call.left = True
    call.exception = exc
    await _arun_exit(call, None, exc)
    return _outcome(call, exc)

"""The contract with generated code: everything an injected trampoline calls lives here.

Generated code imports this module once per file as `_instpy_rt` and creates one `Target` per
injected function at import time. Per call it reads `target.active`; only when that is True does
it call `target.enter(values)` (`await target.aenter(values)`), and, when the target has exit
hooks, hands what that returned to `target.leave(call, value)` on return and
`target.fail(call, exc)` on an exception (`aleave`/`afail` in coroutines).
The hook dispatch never lets a hook break the call: a hook that raises, or that cannot be
imported, is counted and logged once, and the call proceeds exactly as if that hook did not exist
(fail open). A hook module may instead install a `Governor` on a target it alone serves, which
then takes the call without any `Call` or hook dispatch (instpy/runtime/hooks/method.py).

Hooks are resolved lazily, by `module:callable`, on first use, so a hook module may import the
library it instruments without an import cycle. Imports only the standard library.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from instpy.runtime import activation
from instpy.runtime.call import Call

__all__ = [
    "Call",
    "Governor",
    "HookCall",
    "Target",
    "aenter",
    "afail",
    "aleave",
    "all_targets",
    "enter",
    "fail",
    "hook_failures",
    "leave",
    "record_failure",
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
        record_failure(self.name, exc, "cannot be imported; it is disabled")


def _hook(name: str) -> _Hook:
    with _lock:
        hook = _hooks.get(name)
        if hook is None:
            hook = _hooks[name] = _Hook(name)
        return hook


def record_failure(name: str, exc: BaseException, what: str) -> None:
    """Count a failure of `name` (a hook, a governor) and log the first one with its traceback."""
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


_record_failure = record_failure  # the name gRPC's interceptors use


class Governor(Protocol):
    """What a hook module installs on a target to take over its calls (`Target.govern`).

    `enter(values)` replaces the whole hook dispatch. It returns None (run the body, nothing to
    report), a `HookCall` (to skip the body, say: generated code reads its `skipped`,
    `return_value` and `args`), or a token of its own, which generated code hands back exactly
    once: `leave(token, value)` returns what the caller gets, `fail(token, exc)` True to
    re-raise `exc`. `aenter`/`aleave`/`afail` are the awaited twins for coroutines and async
    generators. A governor fails open by itself: nothing it raises is caught for it.
    """

    def enter(self, values: tuple[Any, ...]) -> Any: ...

    def aenter(self, values: tuple[Any, ...]) -> Awaitable[Any]: ...

    def leave(self, token: Any, value: Any) -> Any: ...

    def fail(self, token: Any, exc: BaseException) -> bool: ...

    def aleave(self, token: Any, value: Any) -> Awaitable[Any]: ...

    def afail(self, token: Any, exc: BaseException) -> Awaitable[bool]: ...


class Target:
    """One injected function. Generated code checks `active` and nothing else when it is False.

    When `active`, generated code calls `enter(values)` (`await aenter(values)` in coroutines
    and async generators), and with exit hooks hands what it returned back to `leave(call,
    value)` or `fail(call, exc)` (`aleave`/`afail`). These are the hook dispatch below, or a
    governor's own methods once one is installed (`govern`). They are attributes, not methods,
    so a governed call reaches its governor without a dispatching frame in between.
    """

    __slots__ = ("active", "aenter", "afail", "aleave", "enter", "enter_hooks", "exit_hooks",
                 "fail", "fingerprint", "governor", "leave", "names", "positions")

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
        # Parameter name -> position in the values tuple: reading one argument by name (a hot
        # parameter, say) needs no dict per call.
        self.positions = {name: index for index, name in enumerate(names)}
        self.enter_hooks = tuple(_hook(h) for h in on_enter)
        # Exit hooks unwind in reverse order, like nested context managers.
        self.exit_hooks = tuple(_hook(h) for h in reversed(on_exit))
        self.governor: Governor | None = None
        self.enter: Callable[[tuple[Any, ...]], Any] = self.run_hooks
        self.aenter: Callable[[tuple[Any, ...]], Awaitable[Any]] = self.arun_hooks
        # The HookCall's own methods, unbound: `leave(call, value)` is `call.leave(value)`.
        self.leave: Callable[[Any, Any], Any] = HookCall.leave
        self.fail: Callable[[Any, BaseException], bool] = HookCall.fail
        self.aleave: Callable[[Any, Any], Awaitable[Any]] = HookCall.aleave
        self.afail: Callable[[Any, BaseException], Awaitable[bool]] = HookCall.afail
        with _lock:
            _by_fingerprint.setdefault(fingerprint, []).append(self)
            _all.append(self)

    def govern(self, governor: Governor) -> None:
        """Send this target's calls to `governor` instead of its hooks, for good.

        Only a target with exit hooks can be governed (without them generated code never hands
        a token back). Calls that entered through the hooks before may leave through the
        governor: its `leave`/`fail` hand a `HookCall` back to the call's own methods."""
        if not self.exit_hooks:
            raise ValueError(f"{self.fingerprint} has no exit hooks: it cannot be governed")
        if self.governor is not None:
            raise ValueError(f"{self.fingerprint} is already governed by {self.governor!r}")
        self.governor = governor
        # Exits first: a call entering through the governor must find its exits in place.
        self.leave, self.fail = governor.leave, governor.fail
        self.aleave, self.afail = governor.aleave, governor.afail
        self.enter, self.aenter = governor.enter, governor.aenter

    def govern_alone(self, hooks: tuple[tuple[str, ...], tuple[str, ...]],
                     make: Callable[[], Governor]) -> Governor | None:
        """The target's governor: `make()` installed now if `hooks` (enter hooks, exit hooks,
        as `hook_names` gives them) are all the target runs and it has none yet; whatever
        governs it already; None while it runs other hooks too. Two first calls at once
        install one governor; `make` runs outside this module's lock (it may build the
        engine, whose imports create targets)."""
        gov = self.governor
        if gov is not None or self.hook_names() != hooks:
            return gov
        made = make()
        with _lock:
            if self.governor is None:
                self.govern(made)
            return self.governor

    def hook_names(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The enter hooks in call order and the exit hooks in the order the rules name them."""
        return (tuple(h.name for h in self.enter_hooks),
                tuple(h.name for h in reversed(self.exit_hooks)))

    def run_hooks(self, values: tuple[Any, ...]) -> HookCall | None:
        """Run the enter hooks of a synchronous function; None means "run the body unchanged"."""
        call = HookCall(self, values)
        for hook in self.enter_hooks:
            fn = hook.fn
            if fn is None:
                fn = hook.get()
                if fn is None:
                    continue
            try:
                result = fn(call)
            except Exception as exc:
                call._reset(values)
                record_failure(hook.name, exc, "raised in on_enter")
                continue
            if result is not None and hasattr(result, "__await__"):
                _discard_awaitable(result)
                call._reset(values)
                record_failure(hook.name, TypeError("async hook"), "is async on a sync function")
            if call.skipped:
                break
        return _finish_enter(call)

    async def arun_hooks(self, values: tuple[Any, ...]) -> HookCall | None:
        """`run_hooks` for coroutines and async generators: a hook may be a coroutine function."""
        call = HookCall(self, values)
        for hook in self.enter_hooks:
            fn = hook.fn
            if fn is None:
                fn = hook.get()
                if fn is None:
                    continue
            try:
                result = fn(call)
                if result is not None and hasattr(result, "__await__"):
                    await result
            except Exception as exc:
                call._reset(values)
                record_failure(hook.name, exc, "raised in on_enter")
                continue
            if call.skipped:
                break
        return _finish_enter(call)

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


def _finish_enter(call: HookCall) -> HookCall | None:
    thrown = call.thrown
    if thrown is not None:
        call.thrown = None  # no reference cycle through the traceback
        raise thrown  # an enter hook chose this answer (`call.throw`): not a hook failure
    changed = call._collect_args()
    # Without exit hooks generated code only needs the call when it must act on it.
    if call.skipped or changed or call.target.exit_hooks:
        return call
    return None


def _discard_awaitable(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class HookCall(Call):
    """The `Call` the hooks see, plus what generated code calls when the body ends."""

    __slots__ = ()

    def _exit_hooks(self, value: Any, exc: BaseException | None) -> None:
        for hook in self.target.exit_hooks:
            fn = hook.fn
            if fn is None:
                fn = hook.get()
                if fn is None:
                    continue
            try:
                result = fn(self)
            except Exception as error:
                self.return_value, self.exception = value, exc
                record_failure(hook.name, error, "raised in on_exit")
                continue
            if result is not None and hasattr(result, "__await__"):
                _discard_awaitable(result)
                self.return_value, self.exception = value, exc
                record_failure(hook.name, TypeError("async hook"), "is async on a sync function")

    async def _aexit_hooks(self, value: Any, exc: BaseException | None) -> None:
        for hook in self.target.exit_hooks:
            fn = hook.fn
            if fn is None:
                fn = hook.get()
                if fn is None:
                    continue
            try:
                result = fn(self)
                if result is not None and hasattr(result, "__await__"):
                    await result
            except Exception as error:
                self.return_value, self.exception = value, exc
                record_failure(hook.name, error, "raised in on_exit")

    def _outcome(self, exc: BaseException | None) -> bool:
        """After the exit hooks: True = re-raise `exc`; False = return `return_value`."""
        new = self.exception
        if new is exc:
            return exc is not None
        if new is None:
            return False
        raise new

    def leave(self, value: Any) -> Any:
        """The body returned `value`: run the exit hooks and return what the caller gets."""
        if self.left:
            return value
        self.left = True
        self.return_value = value
        self._exit_hooks(value, None)
        self._outcome(None)
        return self.return_value

    def fail(self, exc: BaseException) -> bool:
        """The body raised `exc`: run the exit hooks; True means generated code re-raises it."""
        if self.left:
            return True
        self.left = True
        self.exception = exc
        self._exit_hooks(None, exc)
        return self._outcome(exc)

    async def aleave(self, value: Any) -> Any:
        """`leave` for coroutines and async generators (exit hooks may be coroutine functions)."""
        if self.left:
            return value
        self.left = True
        self.return_value = value
        await self._aexit_hooks(value, None)
        self._outcome(None)
        return self.return_value

    async def afail(self, exc: BaseException) -> bool:
        """`fail` for coroutines and async generators."""
        if self.left:
            return True
        self.left = True
        self.exception = exc
        await self._aexit_hooks(None, exc)
        return self._outcome(exc)


# -- the previous generated-code entry points, kept for code built before targets dispatched
# -- their own calls (`_instpy_rt.enter(target, values)`, `_instpy_rt.leave(call, value)`).


def enter(target: Target, values: tuple[Any, ...]) -> Any:
    return target.enter(values)


async def aenter(target: Target, values: tuple[Any, ...]) -> Any:
    return await target.aenter(values)


def leave(call: Any, value: Any) -> Any:
    return call.leave(value)


def fail(call: Any, exc: BaseException) -> bool:
    result: bool = call.fail(exc)
    return result


async def aleave(call: Any, value: Any) -> Any:
    return await call.aleave(value)


async def afail(call: Any, exc: BaseException) -> bool:
    result: bool = await call.afail(exc)
    return result

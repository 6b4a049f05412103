"""The call context hooks receive (Contract A, see docs/injection-rules.md).

One `Call` is created per governed call while its target is active; generated code reads only
`skipped`, `return_value` and `args`, and calls the `leave`/`fail` helpers of
`instpy.runtime.injected` through it. Imports only the standard library.
"""

from __future__ import annotations

from operator import is_
from typing import Any

__all__ = ["Call"]


class Call:
    """What one invocation of an injected function looks like to its hooks.

    `function`: the fingerprint `module:qualname`; `params`: parameters by name (replaceable in
    `on_enter`); `data`: a dict carried from enter to exit; `return_value` and `exception`: the
    outcome, readable and replaceable in `on_exit`. `skip(value)` in `on_enter` makes the
    function return `value` without running its body, `throw(exc)` makes it raise `exc` instead
    (the exit hooks are then not called).
    """

    __slots__ = (
        "_names",
        "args",
        "data",
        "exception",
        "function",
        "left",
        "params",
        "return_value",
        "skipped",
        "target",
        "thrown",
    )

    def __init__(self, target: Any, names: tuple[str, ...], values: tuple[Any, ...]) -> None:
        self.target = target
        self.function: str = target.fingerprint
        self._names = names
        self.params: dict[str, Any] = dict(zip(names, values, strict=True))
        # What the body sees after the enter hooks: the original values unless a hook replaced one.
        self.args: tuple[Any, ...] = values
        self.data: dict[str, Any] = {}
        self.return_value: Any = None
        self.exception: BaseException | None = None
        self.skipped = False
        self.thrown: BaseException | None = None
        # Set once the exit hooks ran, so a return inside the body's own `finally` or an
        # exception raised by an exit hook is not reported twice.
        self.left = False

    def skip(self, value: Any = None) -> None:
        """In `on_enter`: do not run the body; the function returns `value` instead.

        For a generator the generator yields nothing and returns `value`; for a coroutine the
        awaited result is `value`; an async generator simply stops (it cannot return a value).
        """
        self.skipped = True
        self.return_value = value

    def throw(self, exception: BaseException) -> None:
        """In `on_enter`: do not run the body; the call raises `exception` instead.

        This is how a blocked method-level call raises its fallback's exception: the hook itself
        returns normally (a hook that raises is a hook failure and fails open), and the runtime
        raises `exception` to the caller. Exit hooks are not called, as with `skip`.
        """
        self.skipped = True
        self.thrown = exception

    def _collect_args(self) -> bool:
        """Refresh `args` from `params`; True when a hook replaced any value."""
        old = self.args
        try:
            new = tuple(map(self.params.__getitem__, self._names))
        except KeyError:
            # A hook deleted a parameter: keep the originals rather than break the call.
            return False
        # Identity, not equality: comparing arbitrary user objects could run user code.
        if all(map(is_, new, old)):
            return False
        self.args = new
        return True

    def __repr__(self) -> str:
        return f"Call({self.function!r}, params={self.params!r})"

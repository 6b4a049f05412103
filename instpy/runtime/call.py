"""The call context hooks receive (Contract A, see docs/injection-rules.md).

One `Call` is created per governed call while its target is active and runs hooks; what
generated code calls on it (`leave`, `fail` and their async twins) is added by
`instpy.runtime.injected`, which runs the hooks. Imports only the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from instpy.runtime.injected import Target

__all__ = ["Call"]


class Call:
    """What one invocation of an injected function looks like to its hooks.

    `function`: the fingerprint `module:qualname`; `params`: parameters by name (replaceable in
    `on_enter`); `arg(name)`: one parameter by name without building `params`; `data`: a dict
    carried from enter to exit; `return_value` and `exception`: the outcome, readable and
    replaceable in `on_exit`. `skip(value)` in `on_enter` makes the function return `value`
    without running its body, `throw(exc)` makes it raise `exc` instead (the exit hooks are then
    not called).
    """

    __slots__ = (
        "_params",
        "args",
        "data",
        "exception",
        "left",
        "replaced",
        "return_value",
        "skipped",
        "target",
        "thrown",
    )

    def __init__(self, target: Target, values: tuple[Any, ...]) -> None:
        self.target = target
        # What the body sees after the enter hooks: the original values unless a hook replaced one.
        self.args = values
        self.replaced = False  # `replace` changed `args` without `params`
        # Built on first use: a dict per call costs more than most hooks spend reading it.
        self._params: dict[str, Any] | None = None
        # Eager: nearly every hook that keeps state uses it, and an empty dict is cheaper than
        # a property read on each use.
        self.data: dict[str, Any] = {}
        self.return_value: Any = None
        self.exception: BaseException | None = None
        self.skipped = False
        self.thrown: BaseException | None = None
        # Set once the exit hooks ran, so a return inside the body's own `finally` or an
        # exception raised by an exit hook is not reported twice.
        self.left = False

    @property
    def function(self) -> str:
        """The fingerprint, `module:qualname`."""
        return self.target.fingerprint

    @property
    def params(self) -> dict[str, Any]:
        """Parameters by name, in signature order; replacing a value in `on_enter` changes
        what the body sees."""
        params = self._params
        if params is None:
            # A plain loop: on CPython builds without PGO, dict(zip(...)) costs twice as much.
            params = self._params = {}
            values = self.args
            index = 0
            for name in self.target.names:
                params[name] = values[index]
                index += 1  # noqa: SIM113 (enumerate() costs an object per call)
        return params

    @params.setter
    def params(self, value: dict[str, Any]) -> None:
        self._params = value

    def arg(self, name: str, default: Any = None) -> Any:
        """The parameter `name` (as `params[name]` would give it), or `default` without one."""
        params = self._params
        if params is not None:
            return params.get(name, default)
        index = self.target.positions.get(name)
        return default if index is None else self.args[index]

    def replace(self, name: str, value: Any) -> None:
        """In `on_enter`: the body sees `value` for the parameter `name` (what
        `params[name] = value` does, without building `params`)."""
        params = self._params
        if params is not None:
            params[name] = value
            return
        args = list(self.args)
        args[self.target.positions[name]] = value
        self.args = tuple(args)
        self.replaced = True

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

    def _reset(self, values: tuple[Any, ...]) -> None:
        """Undo what a failing enter hook did (fail open: as if it had not run)."""
        self.args = values
        self.replaced = False
        self._params = None
        self.skipped = False
        self.return_value = None
        self.thrown = None

    def _collect_args(self) -> bool:
        """Refresh `args` from `params` when a hook used them; True when a value was replaced."""
        params = self._params
        if params is None:
            return self.replaced
        old = self.args
        # Identity, not equality: comparing arbitrary user objects could run user code. A plain
        # loop: on small tuples it beats zip() and map() several times over.
        try:
            index = 0
            for name in self.target.names:
                if params[name] is not old[index]:
                    break
                index += 1  # noqa: SIM113 (enumerate() costs an object per call)
            else:
                return False
            self.args = tuple([params[name] for name in self.target.names])
        except KeyError:
            # A hook deleted a parameter: keep the originals rather than break the call.
            return False
        return True

    def __repr__(self) -> str:
        return f"Call({self.function!r}, params={self.params!r})"

"""Method-level governance of the service's own functions: the resource is the fingerprint.

A user injection rule names a function of the service (`shop.orders:OrderService.create`) and
these hooks; governance.yaml rules on that resource then limit, isolate, break or degrade it.

A target whose only hooks are these two gets a governor (`Target.govern`): its calls skip the
`Call` and the hook dispatch and go straight to the resource's handle, one `enter` and one
`exit` per call, the handle's token kept by the generated code in between. The target is
switched on exactly while its handle is active (a rule names it, or statistics are kept for
it), so a target no rule cares about costs one flag check per call; every rule swap re-reads
that. Targets that carry other hooks as well run these hooks like any other, through a `Call`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType
from typing import Any

from instpy.runtime import injected
from instpy.runtime.call import Call
from instpy.runtime.governance import Blocked, GovernanceConfig, engine
from instpy.runtime.injected import HookCall
from instpy.runtime.resource import Resource, enter_async

ENTER = f"{__name__}:on_enter"
EXIT = f"{__name__}:on_exit"
_OURS = ((ENTER,), (EXIT,))
_TOKEN = "instpy.method"  # the generic path's token, in `call.data`
TRAFFIC = "internal"


def _reader(positions: dict[str, int]) -> Callable[[tuple[Any, ...], str, str], object]:
    """The hot-parameter lookup of a target, bound per call to its values (`MethodType`): an
    argument by name, without a dict or a Python-level `__call__`."""

    def read(values: tuple[Any, ...], source: str, name: str) -> object:
        index = positions.get(name) if source == "arg" else None
        return None if index is None else values[index]

    return read


class _Governor:
    """The method hooks of one target, reduced to its resource handle (`injected.Governor`).

    `enter` answers the handle's token itself, so an admitted call allocates nothing here;
    generated code hands it back exactly once. `hot` says whether a rule on the resource reads
    a parameter (re-read on every swap): only then does a call build a lookup.
    """

    __slots__ = ("hot", "read", "res", "target")

    def __init__(self, target: injected.Target, res: Resource) -> None:
        self.target = target
        self.res = res
        self.hot = False
        self.read = _reader(target.positions)

    def enter(self, values: tuple[Any, ...]) -> object:
        try:
            token = self.res.enter(MethodType(self.read, values) if self.hot else None)
        except Exception as exc:  # fail open: the call runs ungoverned
            injected.record_failure(ENTER, exc, "raised in on_enter")
            return None
        if type(token) is Blocked:
            return self._answer(token, values)
        return token

    async def aenter(self, values: tuple[Any, ...]) -> object:
        try:
            token = await enter_async(self.res,
                                      MethodType(self.read, values) if self.hot else None)
        except Exception as exc:
            injected.record_failure(ENTER, exc, "raised in on_enter")
            return None
        if type(token) is Blocked:
            return self._answer(token, values)
        return token

    def _answer(self, blocked: Blocked, values: tuple[Any, ...]) -> HookCall:
        """A skipped call answered by the fallback's value, or raise the fallback's exception
        (the governed call raises it: not a hook failure)."""
        call = HookCall(self.target, values)
        call.skip(blocked.raise_or_value())
        return call

    def leave(self, token: object, value: Any) -> Any:
        if type(token) is HookCall:  # entered through the hooks, before us
            return token.leave(value)
        try:
            self.res.exit(token, None)
        except Exception as exc:  # fail open: the caller still gets its value
            injected.record_failure(EXIT, exc, "raised in on_exit")
        return value

    def fail(self, token: object, exc: BaseException) -> bool:
        if type(token) is HookCall:
            return bool(token.fail(exc))
        try:
            self.res.exit(token, exc)
        except Exception as error:  # fail open: the caller still gets its exception
            injected.record_failure(EXIT, error, "raised in on_exit")
        return True

    async def aleave(self, token: object, value: Any) -> Any:
        if type(token) is HookCall:
            return await token.aleave(value)
        return self.leave(token, value)

    async def afail(self, token: object, exc: BaseException) -> bool:
        if type(token) is HookCall:
            return bool(await token.afail(exc))
        return self.fail(token, exc)


def _govern(target: injected.Target) -> _Governor | None:
    """The target's governor, installed now if these hooks are all it has (None otherwise)."""
    gov = target.governor
    if isinstance(gov, _Governor):
        return gov

    def make() -> _Governor:
        made = _Governor(target, engine().resource(target.fingerprint, TRAFFIC))
        made.hot = target.fingerprint in _hot
        return made

    gov = target.govern_alone(_OURS, make)
    return gov if isinstance(gov, _Governor) else None


_hot: frozenset[str] = frozenset()  # resources whose rules read a parameter


def _sync(config: GovernanceConfig | None = None) -> None:
    """After a rule swap (handles are re-bound first): switch each governed target on or off."""
    global _hot
    if not injected.GOVERNING:
        return
    if config is None:
        config = engine().config
    _hot = frozenset(r.resource for r in config.rules if r.hot_param is not None)
    for target in injected.all_targets():
        gov = _govern(target)
        if gov is not None:
            gov.hot = target.fingerprint in _hot
            target.active = gov.res.active


# -- the hooks, for targets that also carry other hooks (and a target's very first call) ------


def on_enter(call: Call) -> None:
    gov = _govern(call.target)
    if gov is not None:
        # From the next call on the governor takes over; this one finishes on the hook path.
        call.target.active = gov.res.active
        res = gov.res
    else:
        res = engine().resource(call.function, TRAFFIC)
    if not res.active:
        return

    def lookup(source: str, name: str) -> object:
        return call.arg(name) if source == "arg" else None

    token = res.enter(lookup)
    if token.__class__ is not Blocked:
        if EXIT in call.target.hook_names()[1]:
            call.data[_TOKEN] = (res, token)
        else:
            # No exit hook will hand the token back: count the call as done now, so an
            # in-flight slot is never held for good (its QPS is governed, its RT is not).
            res.exit(token, None)
        return
    try:
        value = token.raise_or_value()
    except Exception as exc:  # the fallback's exception: the governed call raises it
        call.throw(exc)
    else:
        call.skip(value)


def on_exit(call: Call) -> None:
    held = call.data.pop(_TOKEN, None)
    if held is not None:
        res, token = held
        res.exit(token, call.exception)


engine().subscribe(_sync)
_sync()

"""Method-level governance of the service's own functions: the resource is the fingerprint.

A user injection rule names a function of the service (`shop.orders:OrderService.create`) and
these hooks; governance.yaml rules on that resource then limit, isolate, break or degrade it.
A target no rule cares about costs one flag check per call: it is switched off on its first call
and switched back on by the rule swap that starts to name it.
"""

from __future__ import annotations

from collections.abc import Callable

from instpy.runtime import injected
from instpy.runtime.call import Call
from instpy.runtime.governance import Blocked, GovernanceConfig, engine

ENTER = f"{__name__}:on_enter"


def _only_ours(target: injected.Target) -> bool:
    """Targets that also carry other hooks must keep running them."""
    return all(h.name == ENTER for h in target.enter_hooks) and len(target.exit_hooks) <= 1


def _sync(config: GovernanceConfig | None = None) -> None:
    if not injected.GOVERNING:
        return
    eng = engine()
    for target in injected.all_targets():
        if _only_ours(target) and any(h.name == ENTER for h in target.enter_hooks):
            target.active = eng.wants(target.fingerprint, "internal")


def _arg_lookup(call: Call) -> Callable[[str, str], object]:
    params = call.params

    def lookup(source: str, name: str) -> object:
        return params.get(name) if source == "arg" else None

    return lookup


def on_enter(call: Call) -> None:
    eng = engine()
    function = call.function
    if not eng.wants(function, "internal"):
        if _only_ours(call.target):
            call.target.active = False
        return
    result = eng.entry(function, "internal", _arg_lookup(call))
    if not isinstance(result, Blocked):
        call.data["entry"] = result
        return
    try:
        value = result.raise_or_value()
    except Exception as exc:  # the fallback's exception: the governed call raises it
        call.throw(exc)
    else:
        call.skip(value)


def on_exit(call: Call) -> None:
    entry = call.data.get("entry")
    if entry is not None:
        entry.exit(call.exception)


engine().subscribe(_sync)
_sync()

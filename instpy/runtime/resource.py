"""Resource handles: the per-call API of framework and method hooks.

    res = engine().resource("GET /items/{id}", "inbound")   # once per route or target
    token = res.enter(lookup)                # per call; a throttled call sleeps here
    if token.__class__ is Blocked:
        ...answer with its fallback...
    else:
        try:
            ...the call...
        finally:
            res.exit(token, error)           # exactly once per admitted token

A handle is bound to the current rule snapshot's plan for its resource and re-bound by the
engine on every swap, so a hook fetches it once and keeps it. `active` is False while governance
has nothing to do for the resource (no rule, no statistics): a caller may then skip `enter` and
`exit` entirely, the way an injected trampoline skips an inactive target. Calling them anyway is
correct: the idle `enter` answers a token every `exit` ignores.

Tokens are opaque: the start time (an int) on the lean paths, a `TrackedEntry` where the checks
keep per-call state; every plan's `exit` takes either, so a call that straddles a rule swap
exits correctly. Coroutines use `enter_async`, which waits out a throttled call with
`asyncio.sleep` instead of blocking the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from instpy.runtime.entry import IDLE_TOKEN, Blocked, TrackedEntry

if TYPE_CHECKING:
    from instpy.runtime.hotspot.check import Lookup
    from instpy.runtime.plan import ResourcePlan, Sleep

TRAFFIC = ("inbound", "outbound", "internal")


def _idle_enter(lookup: Lookup | None = None) -> object:
    return IDLE_TOKEN


def _idle_exit(token: object, error: object = None) -> None:
    return None


class Resource:
    """One resource for one kind of traffic (`inbound`, `outbound`, `internal`)."""

    __slots__ = ("__weakref__", "active", "enter", "enter_nowait", "exit", "name", "traffic")

    def __init__(self, name: str, traffic: str) -> None:
        if traffic not in TRAFFIC:
            raise ValueError(f"traffic must be one of {', '.join(TRAFFIC)}, not {traffic!r}")
        self.name = name
        self.traffic = traffic
        self.active = False
        self.enter: Callable[[Lookup | None], object] = _idle_enter
        # `enter` that never waits: a throttled call's TrackedEntry carries `wait_ns`.
        self.enter_nowait: Callable[[Lookup | None], object] = _idle_enter
        self.exit: Callable[[object, object], None] = _idle_exit

    def bind(self, plan: ResourcePlan | None, sleep: Sleep = time.sleep) -> None:
        """Point the handle at `plan` (None: idle); a throttled `enter` waits with `sleep`.
        Each attribute is one atomic store; a call that reads `enter` before and `exit` after
        a swap still exits correctly (see above)."""
        if plan is None:
            self.active = False
            self.enter = self.enter_nowait = _idle_enter
            self.exit = _idle_exit
            return
        inbound = self.traffic == "inbound"
        self.exit = plan.exit
        self.enter_nowait = plan.enter_for(inbound, None)
        self.enter = plan.enter_for(inbound, sleep)
        self.active = True

    def __repr__(self) -> str:
        state = "active" if self.active else "idle"
        return f"<instpy Resource {self.traffic} {self.name!r} {state}>"


def waiting(token: object) -> bool:
    """Whether a token from `enter_nowait` must first wait its turn (a throttled call):
    then `await wait_turn(token)` before running the call. A plain function, so the common
    case costs coroutines nothing."""
    return token.__class__ is TrackedEntry and token.wait_ns > 0


async def wait_turn(token: object) -> None:
    """Wait a throttled token's turn with `asyncio.sleep`; its RT starts after the wait."""
    entry: TrackedEntry = token  # type: ignore[assignment]
    await asyncio.sleep(entry.wait_ns / 1e9)
    plan = entry._plan
    if plan is not None:
        entry.start_ns = plan.clock()


async def enter_async(res: Resource, lookup: Lookup | None = None) -> object:
    """`res.enter` for coroutines: a throttled call waits with `asyncio.sleep`. Hot paths
    inline it (`enter_nowait`, then `wait_turn` only when `waiting`)."""
    token = res.enter_nowait(lookup)
    if waiting(token):
        await wait_turn(token)
    return token


__all__ = ["Blocked", "Resource", "enter_async", "wait_turn", "waiting"]

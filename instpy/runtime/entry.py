"""What `Engine.entry` returns: an `Entry` to exit after the call, or `Blocked`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from instpy.runtime.fallback import DEFAULT_HTTP_FALLBACK, Fallback, HttpFallback, MethodFallback

if TYPE_CHECKING:
    from instpy.runtime.events import StateChange


class _Completer(Protocol):
    clock: Callable[[], int]

    def complete(self, entry: TrackedEntry, error: object) -> None: ...


Exit = Callable[[object, object], None]


class Entry:
    """A call that passed governance (the `Engine.entry` API). Call `exit(error=...)` once
    when it finishes.

    `error` is the exception the call raised, or True for a failure that is not an exception
    (an HTTP 5xx, say), or None/False for success. Exiting twice is harmless (ignored).

    Hot paths use resource handles instead (resource.py), which hand out bare tokens and
    allocate nothing per call; an `Entry` wraps such a token with the exit it belongs to.
    """

    __slots__ = ("_exit", "start_ns")
    _exit: Exit | None
    start_ns: int

    def exit(self, error: object = None) -> None:
        done = self._exit
        if done is None:
            return
        self._exit = None
        done(self.start_ns, error)


class TrackedEntry(Entry):
    """The token of a resource whose checks keep per-call state (pacing, hot value, probes).
    It is its own `Entry`: `exit` hands it back to the plan that admitted it."""

    __slots__ = ("_plan", "events", "hot_key", "inbound", "probe", "wait_ns")

    def __init__(self, plan: _Completer, start_ns: int) -> None:
        self._plan: _Completer | None = plan
        self.start_ns = start_ns
        self.wait_ns = 0
        self.hot_key: str | None = None
        self.probe = False
        self.inbound = False
        self.events: list[StateChange] | None = None

    def exit(self, error: object = None) -> None:
        plan = self._plan
        if plan is None:
            return
        self._plan = None
        plan.complete(self, error)


class _IdleEntry(Entry):
    """The shared entry of a resource governance ignores: nothing to record."""

    __slots__ = ()

    def exit(self, error: object = None) -> None:
        return None


class Blocked:
    """A call governance refused: which family, which rule, the value it saw, the fallback.

    `fallback` is the resource's configured fallback (or the degrade answer), None when the
    resource configures none; `http_fallback()` and `raise_or_value()` apply the defaults.
    """

    __slots__ = ("fallback", "family", "resource", "rule", "value")

    def __init__(self, resource: str, family: str, rule: object, value: object,
                 fallback: Fallback | None) -> None:
        self.resource = resource
        self.family = family
        self.rule = rule
        self.value = value
        self.fallback = fallback

    def http_fallback(self) -> HttpFallback:
        """The HTTP answer: the configured one, else 429 text/plain."""
        fb = self.fallback
        return fb if isinstance(fb, HttpFallback) else DEFAULT_HTTP_FALLBACK

    def raise_or_value(self) -> object:
        """For method resources: the configured value, else raise the configured exception
        (BlockedError when none is configured)."""
        fb = self.fallback
        if isinstance(fb, MethodFallback):
            if fb.raise_ is None and fb.value is not None:
                return fb.value
            raise fb.exception(self.resource, self.family)
        from instpy.runtime.errors import BlockedError
        raise BlockedError(self.resource, self.family)

    def __repr__(self) -> str:
        return (f"Blocked(resource={self.resource!r}, family={self.family!r}, "
                f"rule={self.rule!r}, value={self.value!r})")


IDLE_ENTRY: Entry = _IdleEntry()
IDLE_ENTRY._exit = None
IDLE_ENTRY.start_ns = 0
# The token of a call governance ignored: every exit takes it as "nothing to record".
IDLE_TOKEN: object = IDLE_ENTRY

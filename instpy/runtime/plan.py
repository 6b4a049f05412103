"""A resource's precomputed plan: its statistics, its chain of checks, its fallback.

Plans are rebuilt (outside any lock) on every rule swap, never per call; the hot path only
reads attributes prepared here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from instpy.runtime.chain import Check, ExitHook, PassHook
from instpy.runtime.circuitbreaker.check import CLOSED, BreakerCheck
from instpy.runtime.config.rules_section import DegradeRule
from instpy.runtime.entry import Blocked, Exit, TrackedEntry
from instpy.runtime.events import EventLog, StateChange
from instpy.runtime.fallback import Fallback
from instpy.runtime.flow.check import RejectCheck
from instpy.runtime.hotspot.check import HotCheck, Lookup
from instpy.runtime.isolation.check import IsolationCheck
from instpy.runtime.shared import path as shared_path
from instpy.runtime.stat import local_path
from instpy.runtime.stat.shared import SharedStats
from instpy.runtime.stat.store import InboundResourceStats, ResourceStats
from instpy.runtime.stat.window import FREE_THREADED, LocalStats
from instpy.runtime.system.check import SystemCheck

Clock = Callable[[], int]
Sleep = Callable[[float], object]


class ResourcePlan:
    """Everything a governed call of one resource needs under one rule snapshot.

    The per-call work is chosen here, once: `enter`/`exit` are bound to the cheapest
    functions that cover the resource's rules (statistics only; reject flow, isolation and a
    breaker, lock-free on the GIL build; anything else under the resource lock). With
    `LocalStats` counters on a GIL build the first two are stat/local_path.py's closures,
    which count in place.
    """

    __slots__ = ("breaker", "checks", "clock", "complete", "contextual", "degrade", "enter",
                 "events", "exit", "exit_hooks", "fallback", "flow_limit", "hot", "inbound",
                 "isolation", "locked", "pass_hooks", "resource", "stats", "system", "tracked")
    enter: local_path.Enter

    def __init__(self, resource: str, stats: ResourceStats, *, clock: Clock, events: EventLog,
                 checks: tuple[Check, ...] = (), hot: HotCheck | None = None,
                 pass_hooks: tuple[PassHook, ...] = (), exit_hooks: tuple[ExitHook, ...] = (),
                 degrade: DegradeRule | None = None, fallback: Fallback | None = None,
                 system: SystemCheck | None = None,
                 inbound: InboundResourceStats | None = None) -> None:
        self.resource = resource
        self.stats = stats
        self.clock = clock
        self.events = events
        self.checks = checks
        self.hot = hot
        self.pass_hooks = pass_hooks
        self.exit_hooks = exit_hooks
        self.degrade = degrade
        self.fallback = degrade.fallback if degrade is not None else fallback
        self.system = system
        self.inbound = inbound
        # Reject flow is counted by `stats.admit`; isolation reads in-flight after it; a
        # closed breaker only reads its state. Everything else keeps state that needs the lock.
        self.flow_limit = float("inf")
        self.isolation: IsolationCheck | None = None
        self.breaker: BreakerCheck | None = None
        locked: list[Check] = []
        for check in checks:
            if isinstance(check, RejectCheck) and not locked:
                self.flow_limit = check.qps
            elif isinstance(check, IsolationCheck) and not locked:
                self.isolation = check
            elif isinstance(check, BreakerCheck) and not locked:
                self.breaker = check
            else:
                locked.append(check)
        self.locked = tuple(locked)
        self.tracked = bool(checks) or system is not None
        lean = not locked and not pass_hooks and system is None and hot is None
        # The store's fast path, chosen here rather than per call (see local_path).
        # The store's own per-call closures (stat/local_path.py for LocalStats, shared/path.py
        # for the instance's segment: the same two builders), else the generic methods below.
        fast: Any = None
        if not FREE_THREADED:
            if type(stats) is LocalStats:
                fast = local_path
            elif type(stats) is SharedStats:
                fast = shared_path
        # `enter` -> a token (see resource.py) or Blocked; `exit(token, error)` takes any
        # token back; `complete` is what a TrackedEntry token calls on its own plan.
        self.complete: Callable[[TrackedEntry, object], None] = self._complete_full
        self.exit: Exit = self._exit_other
        # Whether `enter` reads its `inbound` and `sleep` arguments (system rules, pacing):
        # the others ignore them, so a resource handle calls them with the lookup alone.
        self.contextual = True
        # A hot rule in queries per second over the instance's table has a path of its own.
        shared_hot = (shared_path.hot_path(self, stats, self._enter_full, self._exit_other)
                      if isinstance(stats, SharedStats) and fast is shared_path
                      and hot is not None else None)
        if FREE_THREADED:
            # No GIL: the deque counters are not atomic, so every call takes the lock.
            self.enter = self._enter_serial
            self.complete = self._complete_serial
        elif shared_hot is not None:
            self.enter, self.exit = shared_hot
            self.contextual = False
        elif degrade is not None or (self.tracked and not lean):
            self.enter = self._enter_full
        elif self.tracked and fast is not None:
            self.enter, self.exit = fast.lean_path(self, stats, self._enter_lean,
                                                   self._exit_other)
            self.contextual = False
        elif self.tracked:
            self.enter = self._enter_lean
            self.contextual = False
        elif fast is not None:
            self.enter, self.exit = fast.stats_path(self, stats, self._exit_other)
            self.contextual = False
        else:
            self.enter = self._enter_stats
            self.contextual = False

    def enter_for(self, inbound: bool, sleep: Sleep | None) -> Callable[[Lookup | None], object]:
        """`enter` with this traffic and way of waiting bound: what a resource handle calls."""
        enter = self.enter
        if not self.contextual:
            return enter  # type: ignore[return-value]  # its other arguments have defaults

        def bound(lookup: Lookup | None = None) -> object:
            return enter(lookup, inbound, sleep)

        return bound

    # -- statistics only, and reject flow, isolation, a closed breaker (no lock) -------------

    def _enter_stats(self, lookup: Lookup | None = None, inbound: bool = False,
                     sleep: Sleep | None = None) -> object:
        now = self.clock()
        self.stats.on_pass(now)
        return now

    def _enter_lean(self, lookup: Lookup | None = None, inbound: bool = False,
                    sleep: Sleep | None = None) -> object:
        breaker = self.breaker
        if breaker is not None and breaker.state is not CLOSED:
            return self._enter_full(lookup, inbound, sleep)
        now = self.clock()
        stats = self.stats
        token = stats.admit(now, self.flow_limit)
        if token.__class__ is int:
            now, token = self._retime(now, token)
            if token.__class__ is int:
                return self._blocked(now, "flow", self.checks[0].rule, token)
        isolation = self.isolation
        if isolation is not None and stats.inflight > isolation.limit:
            seen = stats.inflight - 1
            stats.cancel(token, now, "isolation")
            return self._refused(now, "isolation", isolation.rule, seen)
        return now

    def _exit_other(self, token: object, error: object = None) -> None:
        """Take back any token: a start time (the lean paths), a TrackedEntry (exits into
        the plan that admitted it, even after a rule swap), or the idle token (nothing)."""
        if token.__class__ is TrackedEntry:
            plan = token._plan  # TrackedEntry.exit, one call fewer on the full path
            if plan is not None:
                token._plan = None
                plan.complete(token, error)
        elif token.__class__ is int:
            self._complete_int(token, error)

    def breaker_done(self, breaker: BreakerCheck, now: int, rt: int, bad: bool) -> None:
        """A lean path's completion, for a breaker of this plan (`self.breaker`, or a hot
        rule's plan's breaker, kept among the checks that need the lock): counted while it is
        closed (lock-free), and the breaker opened when that count crosses its threshold. A call
        that entered closed and ends while the breaker is not closed is ignored (not a probe)."""
        if breaker.state is not CLOSED:
            return
        seen = breaker.count(now, rt, bad)
        if seen is not None:
            change = breaker.open_if_closed(now, seen, self.stats.lock)
            if change is not None:
                self._emit(now, [change])

    def _complete_int(self, start_ns: int, error: object) -> None:
        now = self.clock()
        rt = now - start_ns
        bad = error is not None and error is not False
        stats = self.stats
        if FREE_THREADED:
            stats.lock.acquire()
            try:
                stats.on_complete(now, rt, bad)
            finally:
                stats.lock.release()
            return
        stats.on_complete(now, rt, bad)
        breaker = self.breaker
        if breaker is not None and breaker.state is CLOSED:
            lock = stats.lock
            lock.acquire()
            try:
                change = breaker.on_exit(None, now, rt, bad)  # type: ignore[arg-type]
            finally:
                lock.release()
            if change is not None:
                self._emit(now, [change])

    def _retime(self, now: int, token: object) -> tuple[int, object]:
        """`admit` answered -1: this thread stalled past its bucket (or the clock went back).
        Count the call as arriving now, in the current bucket."""
        stats = self.stats
        for _ in range(3):
            if token != -1:
                break
            now = max(self.clock(), stats.floor_ns())
            token = stats.admit(now, self.flow_limit)
        else:
            if token == -1:  # three stalls in a row: count it without the window check
                token = stats.on_pass(now)
        return now, token

    # -- everything else ---------------------------------------------------------------------

    def _enter_full(self, lookup: Lookup | None = None, inbound: bool = False,
                    sleep: Sleep | None = None) -> TrackedEntry | Blocked:
        """Run the chain; with `sleep` None a throttled entry is returned with `wait_ns` set
        for the caller to wait (asynchronously) before running the call."""
        now = self.clock()
        if self.degrade is not None:
            return self._blocked(now, "degrade", self.degrade, None)
        entry = TrackedEntry(self, now)
        if inbound and self.system is not None:
            observed = self.system.check(now)
            if observed is not None:
                return self._blocked(now, "system", self.system.rule, observed)
            entry.inbound = True
        if self.hot is not None and lookup is not None:
            entry.hot_key = self._hot_key(lookup)
        stats = self.stats
        token = stats.admit(now, self.flow_limit)
        if token.__class__ is int:
            now, token = self._retime(now, token)
            entry.start_ns = now
            if token.__class__ is int:
                return self._blocked(now, "flow", self.checks[0].rule, token)
        fired: Check | None = None
        seen: object = None
        isolation = self.isolation
        if isolation is not None and stats.inflight > isolation.limit:
            fired, seen = isolation, stats.inflight - 1
        elif self.locked or self.breaker is not None or self.pass_hooks:
            lock = stats.lock
            lock.acquire()
            try:
                for check in self.locked:
                    seen = check.check(stats, now, entry)
                    if seen is not None:
                        fired = check
                        break
                else:
                    if self.breaker is not None:
                        seen = self.breaker.check(stats, now, entry)
                        if seen is not None:
                            fired = self.breaker
                    if fired is None:
                        for hook in self.pass_hooks:
                            hook.on_pass(entry)
            finally:
                lock.release()
        if entry.events is not None:
            self._emit(now, entry.events)
            entry.events = None
        if fired is not None:
            stats.cancel(token, now, fired.family)
            return self._refused(now, fired.family, fired.rule, seen)
        if entry.inbound:
            self._inbound_pass(now)
        if entry.wait_ns and sleep is not None:
            sleep(entry.wait_ns / 1e9)
            entry.start_ns = self.clock()
        return entry

    def _complete_full(self, entry: TrackedEntry, error: object) -> None:
        now = self.clock()
        rt = now - entry.start_ns
        bad = error is not None and error is not False
        stats = self.stats
        stats.on_complete(now, rt, bad)
        if self.exit_hooks:
            lock = stats.lock
            lock.acquire()
            try:
                for hook in self.exit_hooks:
                    change = hook.on_exit(entry, now, rt, bad)
                    if change is not None:
                        entry.events = [change]
            finally:
                lock.release()
        if entry.inbound and self.inbound is not None:
            inbound = self.inbound
            inbound.lock.acquire()
            try:
                inbound.on_complete(now, rt, bad)
            finally:
                inbound.lock.release()
        if entry.events is not None:
            self._emit(now, entry.events)

    # -- free-threaded builds: the same work, one call at a time per resource ----------------

    def _enter_serial(self, lookup: Lookup | None = None, inbound: bool = False,
                      sleep: Sleep | None = None) -> TrackedEntry | Blocked:
        if self.hot is not None and lookup is not None:
            key = self._hot_key(lookup)  # the hook's lookup runs outside the lock
            lookup = lambda source, name: key  # noqa: E731
        lock = self.stats.lock
        lock.acquire()
        try:
            result = self._enter_full(lookup, inbound, None)
        finally:
            lock.release()
        if isinstance(result, TrackedEntry) and result.wait_ns and sleep is not None:
            sleep(result.wait_ns / 1e9)
            result.start_ns = self.clock()
        return result

    def _complete_serial(self, entry: TrackedEntry, error: object) -> None:
        lock = self.stats.lock
        lock.acquire()
        try:
            self._complete_full(entry, error)
        finally:
            lock.release()

    # -- shared ------------------------------------------------------------------------------

    def _inbound_pass(self, now: int) -> None:
        inbound = self.inbound
        if inbound is None:
            return
        inbound.lock.acquire()
        try:
            inbound.on_pass(now)
        finally:
            inbound.lock.release()

    def _blocked(self, now: int, family: str, rule: object, seen: object) -> Blocked:
        self.stats.on_block(now, family)
        return self._refused(now, family, rule, seen)

    def _refused(self, now: int, family: str, rule: object, seen: object) -> Blocked:
        self.events.blocked(now, self.resource, family, rule, seen)
        return Blocked(self.resource, family, rule, seen, self.fallback)

    def _hot_key(self, lookup: Lookup | None) -> str | None:
        hot = self.hot
        if hot is None:
            return None
        try:
            return hot.key(lookup)
        except Exception as exc:  # the hook's lookup failed: no value, no per-value limit
            self.events.failure(self.clock(), self.resource, "hot_param_lookup", exc)
            return None

    def _emit(self, now: int, changes: list[StateChange]) -> None:
        for change in changes:
            self.events.state_changed(now, change)

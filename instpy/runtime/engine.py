"""The governance engine: one rule snapshot, swapped atomically, read by every call.

State kept between calls: the current `_Snapshot` (plans per resource, system check, the
config it came from), the statistics store (counters outlive snapshots), the event log, and the
background helpers the config asks for (CPU sampler, /metrics listener, file watcher).
Writers (`load`) serialise on `_swap_lock`; readers never lock: they read `_routes` (the
snapshot's resource -> `plan.enter`, so a governed call makes one dict lookup and one call)
and, on a miss, `_snapshot`, once each.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable

from instpy.runtime.chain import ExitHook, PassHook, chain
from instpy.runtime.circuitbreaker import manager as breaker_manager
from instpy.runtime.circuitbreaker.check import STATE_VALUES, BreakerCheck
from instpy.runtime.config.document import GovernanceConfig, parse_config
from instpy.runtime.config.rules_section import ResourceRules
from instpy.runtime.entry import IDLE_ENTRY, Blocked, Entry, TrackedEntry
from instpy.runtime.errors import ConfigError
from instpy.runtime.events import EventLog, StateChange
from instpy.runtime.flow import manager as flow_manager
from instpy.runtime.hotspot import manager as hot_manager
from instpy.runtime.hotspot.check import HotConcurrencyCheck, Lookup
from instpy.runtime.isolation import manager as isolation_manager
from instpy.runtime.plan import Clock, ResourcePlan, Sleep
from instpy.runtime.resource import Resource
from instpy.runtime.stat.shared import instance_store
from instpy.runtime.stat.store import StatsStore
from instpy.runtime.system import manager as system_manager
from instpy.runtime.system.check import SystemCheck
from instpy.runtime.system.cpu import CpuSampler

LOG = logging.getLogger("instpy.governance")
# Resources without rules get statistics only when asked (metrics.all_resources or system
# rules); outbound URLs can be unbounded, so their number is capped.
MAX_UNRULED = 5_000
# Handles kept (and re-bound on every swap) by the engine; see `Engine.resource`.
MAX_HANDLES = 10_000


def _as_entry(plan: ResourcePlan, token: object) -> Entry | Blocked:
    """The `Entry` API over a plan's token."""
    if token.__class__ is int:
        entry = Entry()
        entry._exit = plan.exit
        entry.start_ns = token
        return entry
    if isinstance(token, (Entry, Blocked)):
        return token
    return IDLE_ENTRY


class _Snapshot:
    __slots__ = ("by_rule", "config", "plans", "routes", "system", "unruled", "unruled_all",
                 "unruled_inbound")

    def __init__(self, config: GovernanceConfig, plans: dict[str, ResourcePlan],
                 system: SystemCheck | None, by_rule: dict[object, object]) -> None:
        self.config = config
        self.plans = plans
        self.system = system
        self.by_rule = by_rule  # rule -> its stateful check, reused by the next build
        # What `Engine.entry` looks up: every plan, the unruled ones added as created.
        self.routes: dict[str, ResourcePlan] = dict(plans)
        self.unruled: dict[str, ResourcePlan] = {}
        self.unruled_all = config.metrics.all_resources
        self.unruled_inbound = system is not None or config.metrics.inbound


class Engine:
    """Governance for one process. Construct directly in tests (inject `clock`, `sleep`,
    `cpu`, `store`); services use `instpy.runtime.governance.engine()`. Without `store`, the
    counters are the instance's (stat/shared.py `instance_store`): shared with the other
    workers of a pre-fork server, this process's own otherwise."""

    def __init__(self, config: GovernanceConfig | None = None, *,
                 clock: Clock = time.monotonic_ns, sleep: Sleep = time.sleep,
                 cpu: Callable[[], float] | None = None, store: StatsStore | None = None,
                 events: EventLog | None = None, metrics_port: int | None = None) -> None:
        self._clock = clock
        self._sleep = sleep
        self._cpu_injected = cpu
        self._cpu_sampler: CpuSampler | None = None
        # Counters per instance (shared by a pre-fork server's workers) unless given a store.
        self._store: StatsStore = store if store is not None else instance_store()
        self.events = events if events is not None else EventLog()
        self._metrics_port_override = metrics_port
        self._metrics_server: object | None = None
        self._watcher: object | None = None
        self._subscribers: list[Callable[[GovernanceConfig], None]] = []
        self._swap_lock = threading.RLock()
        self._unruled_lock = threading.Lock()
        self._snapshot = _Snapshot(GovernanceConfig(), {}, None, {})
        self._routes = self._snapshot.routes
        self._handles: dict[tuple[str, str], Resource] = {}
        self._overflow: weakref.WeakSet[Resource] = weakref.WeakSet()
        self.load(config if config is not None else GovernanceConfig())

    # -- the per-call API (Contract B) -------------------------------------------------------

    def resource(self, name: str, traffic: str = "inbound") -> Resource:
        """The handle of `name` for `traffic` (resource.py): fetch it once per route or
        target and keep it; it follows every rule swap. The same handle is returned for the
        same pair, up to MAX_HANDLES pairs; past that a new handle is bound now and re-bound
        on swaps only while the caller keeps it."""
        key = (name, traffic)
        handle = self._handles.get(key)
        if handle is not None:
            return handle
        handle = Resource(name, traffic)
        with self._swap_lock:
            found = self._handles.get(key)
            if found is not None:
                return found
            handle.bind(self._plan_for(self._snapshot, name, traffic), self._sleep)
            if len(self._handles) < MAX_HANDLES:
                self._handles[key] = handle
            else:
                self._overflow.add(handle)
        return handle

    def entry(self, resource: str, traffic: str = "inbound",
              lookup: Lookup | None = None) -> Entry | Blocked:
        """Govern one call of `resource`: an Entry to exit when the call ends, or Blocked.
        A throttled call waits here (time.sleep); async code uses `entry_async`. Hooks use
        the allocation-free `resource` handles; this is the convenience form."""
        plan = self._routes.get(resource)
        if plan is None:
            plan = self._plan_for(self._snapshot, resource, traffic)
            if plan is None:
                return IDLE_ENTRY
        return _as_entry(plan, plan.enter(lookup, traffic == "inbound", self._sleep))

    async def entry_async(self, resource: str, traffic: str = "inbound",
                          lookup: Lookup | None = None) -> Entry | Blocked:
        """`entry` for coroutines: a throttled call waits with asyncio.sleep."""
        plan = self._routes.get(resource)
        if plan is None:
            plan = self._plan_for(self._snapshot, resource, traffic)
            if plan is None:
                return IDLE_ENTRY
        result = plan.enter(lookup, traffic == "inbound", None)
        if isinstance(result, TrackedEntry) and result.wait_ns:
            await asyncio.sleep(result.wait_ns / 1e9)
            result.start_ns = self._clock()
        return _as_entry(plan, result)

    def wants(self, resource: str, traffic: str | None = None) -> bool:
        """Whether governance has anything to do for `resource` (rules or statistics).
        With `traffic` None, True also when system rules would apply to inbound calls."""
        snap = self._snapshot
        if resource in snap.plans or snap.unruled_all:
            return True
        return snap.unruled_inbound and traffic in (None, "inbound")

    def subscribe(self, callback: Callable[[GovernanceConfig], None]) -> None:
        """Call `callback(config)` after every successful rule swap."""
        self._subscribers.append(callback)

    def on_state_change(self, callback: Callable[[StateChange], None]) -> None:
        """Call `callback(change)` on every circuit breaker transition."""
        self.events.listeners.append(callback)

    def metrics_text(self) -> str:
        """Prometheus text exposition of every resource with statistics."""
        from instpy.runtime.metrics.exposition import render
        return render(self)

    # -- configuration -----------------------------------------------------------------------

    @property
    def config(self) -> GovernanceConfig:
        return self._snapshot.config

    def rules_for(self, resource: str) -> ResourceRules | None:
        for rules in self._snapshot.config.rules:
            if rules.resource == resource:
                return rules
        return None

    def breaker_state(self, resource: str) -> str | None:
        plan = self._snapshot.plans.get(resource)
        if plan is None:
            return None
        for check in plan.checks:
            if isinstance(check, BreakerCheck):
                return check.state
        return None

    def load(self, config: GovernanceConfig) -> None:
        """Build everything for a validated config outside the readers' way, then swap one
        reference. Unchanged rules keep their state (breakers, buckets, warm-up)."""
        with self._swap_lock:
            old = self._snapshot
            new = self._build(config, old)
            self._snapshot = new
            self._routes = new.routes
            for handle in [*self._handles.values(), *self._overflow]:
                handle.bind(self._plan_for(new, handle.name, handle.traffic), self._sleep)
            self._after_swap(config)
        for callback in list(self._subscribers):
            try:
                callback(config)
            except Exception:  # a subscriber's bug must not undo a valid swap
                LOG.exception("instpy: governance subscriber failed")

    def load_text(self, text: str, file: str = "governance.yaml") -> None:
        """Validate a whole document and swap it in; raise ConfigError and keep the current
        rules when it is invalid."""
        self.load(parse_config(text, file))

    def apply_text(self, text: str, file: str) -> bool:
        """`load_text` that logs a rejection (one structured line) instead of raising."""
        try:
            self.load_text(text, file)
        except ConfigError as exc:
            LOG.error(json.dumps({"event": "config_rejected", "file": exc.file,
                                  "line": exc.line, "field": exc.field, "problem": exc.problem,
                                  "fix": exc.fix, "message": str(exc)}, sort_keys=True))
            return False
        LOG.info(json.dumps({"event": "config_applied", "file": file}))
        return True

    def watch(self, path: str, interval_s: float = 0.25) -> None:
        """Load `path` now and poll it; a valid change is swapped in within a second."""
        from instpy.runtime.reload import FileWatcher
        with self._swap_lock:
            self._stop_watcher()
            watcher = FileWatcher(path, self.apply_text, interval_s)
            self._watcher = watcher
        watcher.start()

    def close(self) -> None:
        """Stop background threads and the metrics listener (tests; process exit)."""
        with self._swap_lock:
            self._stop_watcher()
            if self._cpu_sampler is not None:
                self._cpu_sampler.stop()
                self._cpu_sampler = None
            self._set_metrics_port(None)

    # -- internals ---------------------------------------------------------------------------

    def _plan_for(self, snap: _Snapshot, resource: str, traffic: str) -> ResourcePlan | None:
        """The plan governing `resource` for `traffic` under `snap`: its rules' plan, else a
        statistics-only plan when statistics are asked for, else None (idle)."""
        plan = snap.plans.get(resource)
        if plan is not None:
            return plan
        if not (snap.unruled_all or (snap.unruled_inbound and traffic == "inbound")):
            return None
        return self._unruled(snap, resource)

    def _unruled(self, snap: _Snapshot, resource: str) -> ResourcePlan | None:
        plan = snap.unruled.get(resource)
        if plan is not None:
            return plan
        with self._unruled_lock:
            plan = snap.unruled.get(resource)
            if plan is None:
                if len(snap.unruled) >= MAX_UNRULED:
                    return None
                plan = ResourcePlan(resource, self._store.stats(resource), clock=self._clock,
                                    events=self.events, system=snap.system,
                                    inbound=self._store.inbound())
                snap.unruled[resource] = plan
                snap.routes[resource] = plan
        return plan

    def _cpu_source(self, config: GovernanceConfig) -> Callable[[], float]:
        if self._cpu_injected is not None:
            return self._cpu_injected
        interval = config.system.cpu_sample_interval_ms / 1000.0
        sampler = self._cpu_sampler
        if sampler is None or sampler.interval_s != interval:
            if sampler is not None:
                sampler.stop()
            sampler = self._cpu_sampler = CpuSampler(interval)
        return sampler

    def _build(self, config: GovernanceConfig, old: _Snapshot) -> _Snapshot:
        rules = config.rules
        prev = old.by_rule
        # Where stateful checks keep their state: the instance's segment, or this process.
        states = self._store.states(rules)
        flows = flow_manager.build((r.flow for r in rules if r.flow), prev, states)
        isolations = isolation_manager.build((r.isolation for r in rules if r.isolation), prev)
        hots = hot_manager.build((r.hot_param for r in rules if r.hot_param), prev, states)
        breakers = breaker_manager.build(
            (r.circuit_breaker for r in rules if r.circuit_breaker), prev, states)
        cpu = (self._cpu_source(config) if config.system.cpu_threshold is not None
               else (lambda: 0.0))
        inbound = self._store.inbound()
        system = system_manager.build(config.system, inbound, cpu)
        by_rule: dict[object, object] = {}
        plans: dict[str, ResourcePlan] = {}
        for r in rules:
            name = r.resource
            hot = hots.get(name)
            breaker = breakers.get(name)
            pass_hooks: list[PassHook] = []
            exit_hooks: list[ExitHook] = []
            if isinstance(hot, HotConcurrencyCheck):
                pass_hooks.append(hot)
                exit_hooks.append(hot)
            if breaker is not None:
                exit_hooks.append(breaker)
            checks = chain(flows.get(name), isolations.get(name), hot, breaker)
            for check in checks:
                by_rule[check.rule] = check
            stats = (self._store.process_stats(name) if r.scope == "process"
                     else self._store.stats(name))
            plans[name] = ResourcePlan(
                name, stats, clock=self._clock, events=self.events,
                checks=checks, hot=hot, pass_hooks=tuple(pass_hooks),
                exit_hooks=tuple(exit_hooks), degrade=r.degrade, fallback=r.fallback,
                system=system, inbound=inbound)
        return _Snapshot(config, plans, system, by_rule)

    def _after_swap(self, config: GovernanceConfig) -> None:
        if config.system.cpu_threshold is None and self._cpu_sampler is not None:
            self._cpu_sampler.stop()
            self._cpu_sampler = None
        port = self._metrics_port_override
        self._set_metrics_port(port if port is not None else config.metrics.port)

    def _set_metrics_port(self, port: int | None) -> None:
        from instpy.runtime.metrics.server import MetricsServer
        server = self._metrics_server
        if isinstance(server, MetricsServer):
            if server.port == port:
                return
            server.stop()
            self._metrics_server = None
        if port is not None:
            try:
                self._metrics_server = MetricsServer(port, self.metrics_text)
            except OSError as exc:  # a busy port must not take governance down
                LOG.error(json.dumps({"event": "metrics_listener_failed", "port": port,
                                      "error": str(exc)}))

    def _stop_watcher(self) -> None:
        from instpy.runtime.reload import FileWatcher
        if isinstance(self._watcher, FileWatcher):
            self._watcher.stop()
        self._watcher = None

    def breaker_states(self) -> dict[str, int]:
        """Resource -> breaker state as a number (0 closed, 1 open, 2 half-open)."""
        out: dict[str, int] = {}
        for name, plan in self._snapshot.plans.items():
            for check in plan.checks:
                if isinstance(check, BreakerCheck):
                    out[name] = STATE_VALUES[check.state]
        return out

    def statistics(self) -> StatsStore:
        return self._store

    def now_ns(self) -> int:
        return self._clock()

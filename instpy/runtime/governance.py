"""Contract B: what framework hooks call per request (see docs/architecture.md).

    from instpy.runtime.governance import Blocked, engine

    res = engine().resource("GET /users/{id}", "inbound")   # once per route; keep it
    token = res.enter(lookup)               # coroutines: `await enter_async(res, lookup)`
    if token.__class__ is Blocked:
        answer = token.http_fallback()      # or token.raise_or_value() for method resources
    else:
        try:
            ... run the call ...
        except BaseException as exc:
            res.exit(token, exc)
            raise
        res.exit(token, None)

`engine().entry(resource, traffic, lookup)` is the same as an object with `.exit(error=...)`,
for code that calls governance now and then (it allocates per call; handles do not).

The process's engine is created on first use: it loads the file named by INSTPY_GOVERNANCE
(else ./governance.yaml), polls it for changes, and serves /metrics on 127.0.0.1 when
INSTPY_METRICS_PORT or `metrics.port` says so.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

from instpy.runtime.circuitbreaker.check import CLOSED, HALF_OPEN, OPEN
from instpy.runtime.config.document import GovernanceConfig, parse_config
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.errors import BlockedError, ConfigError
from instpy.runtime.events import StateChange
from instpy.runtime.fallback import DEFAULT_HTTP_FALLBACK, HttpFallback, MethodFallback
from instpy.runtime.resource import Resource, enter_async

__all__ = [
    "CLOSED", "DEFAULT_HTTP_FALLBACK", "HALF_OPEN", "OPEN", "Blocked", "BlockedError",
    "ConfigError", "Engine", "Entry", "GovernanceConfig", "HttpFallback", "MethodFallback",
    "Resource", "StateChange", "engine", "engine_async", "enter_async", "parse_config",
]

_lock = threading.Lock()
_engine: list[Engine] = []  # the one default-instance accessor's slot


def engine() -> Engine:
    """The process's engine, created (and its file read and watched) on first use.

    The first version of governance.yaml is applied before this returns, so the very first
    governed call already sees the rules. The engine is stored before its file is read, so a
    problem with the file never makes later calls build another engine. Coroutines use
    `engine_async`, which does this work off the event loop.
    """
    if _engine:
        return _engine[0]
    with _lock:
        if not _engine:
            port_text = os.environ.get("INSTPY_METRICS_PORT", "").strip()
            port = int(port_text) if port_text.isdigit() else None
            eng = Engine(metrics_port=port)
            _engine.append(eng)
            eng.watch(os.environ.get("INSTPY_GOVERNANCE") or "governance.yaml")
    return _engine[0]


async def engine_async() -> Engine:
    """`engine()` for coroutines: the first call builds the engine in a worker thread, because
    building it reads files (governance.yaml, /proc for the instance's identity) and an event
    loop must not block on that. Later calls return at once."""
    if _engine:
        return _engine[0]
    if asyncio._get_running_loop() is not None:
        return await asyncio.get_running_loop().run_in_executor(None, engine)
    trio = sys.modules.get("trio")
    to_thread = getattr(getattr(trio, "to_thread", None), "run_sync", None)
    if callable(to_thread):
        built: Engine = await to_thread(engine)
        return built
    return engine()

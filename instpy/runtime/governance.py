"""Contract B: what framework hooks call per request (see docs/architecture.md).

    from instpy.runtime.governance import engine, Blocked

    eng = engine()
    res = eng.entry("GET /users/{id}", traffic="inbound", lookup=lookup)
    if isinstance(res, Blocked):
        answer = res.http_fallback()        # or res.raise_or_value() for method resources
    else:
        try:
            ... run the call ...
        except BaseException as exc:
            res.exit(error=exc)
            raise
        res.exit()

The process's engine is created on first use: it loads the file named by INSTPY_GOVERNANCE
(else ./governance.yaml), polls it for changes, and serves /metrics on 127.0.0.1 when
INSTPY_METRICS_PORT or `metrics.port` says so.
"""

from __future__ import annotations

import os
import threading

from instpy.runtime.circuitbreaker.check import CLOSED, HALF_OPEN, OPEN
from instpy.runtime.config.document import GovernanceConfig, parse_config
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.errors import BlockedError, ConfigError
from instpy.runtime.events import StateChange
from instpy.runtime.fallback import DEFAULT_HTTP_FALLBACK, HttpFallback, MethodFallback

__all__ = [
    "CLOSED", "DEFAULT_HTTP_FALLBACK", "HALF_OPEN", "OPEN", "Blocked", "BlockedError",
    "ConfigError", "Engine", "Entry", "GovernanceConfig", "HttpFallback", "MethodFallback",
    "StateChange", "engine", "parse_config",
]

_lock = threading.Lock()
_engine: list[Engine] = []  # the one default-instance accessor's slot


def engine() -> Engine:
    """The process's engine, created (and its file watched) on first use."""
    if _engine:
        return _engine[0]
    with _lock:
        if not _engine:
            port_text = os.environ.get("INSTPY_METRICS_PORT", "").strip()
            port = int(port_text) if port_text.isdigit() else None
            eng = Engine(metrics_port=port)
            eng.watch(os.environ.get("INSTPY_GOVERNANCE") or "governance.yaml")
            _engine.append(eng)
    return _engine[0]

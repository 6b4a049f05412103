"""Isolation: a cap on in-flight calls, deterministic and under real threads."""

from __future__ import annotations

import threading
import time

from gov_helpers import MakeEngine, clock, make_engine

from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry
from instpy.runtime.governance import parse_config


def test_blocks_at_max_and_frees_on_exit(make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: r\n    concurrency: {max: 2}\n")
    a, b = eng.entry("r"), eng.entry("r")
    assert isinstance(a, Entry) and isinstance(b, Entry)
    c = eng.entry("r")
    assert isinstance(c, Blocked) and c.family == "isolation" and c.value == 2
    a.exit()
    a.exit()  # a second exit is ignored, not a second release
    d = eng.entry("r")
    assert isinstance(d, Entry)
    assert isinstance(eng.entry("r"), Blocked)


def test_errors_release_the_slot(make_engine: MakeEngine) -> None:
    eng = make_engine("rules:\n  - resource: r\n    concurrency: {max: 1}\n")
    a = eng.entry("r")
    assert isinstance(a, Entry)
    a.exit(error=ValueError("boom"))
    assert isinstance(eng.entry("r"), Entry)


def test_real_threads_never_exceed_max() -> None:
    eng = Engine(parse_config("rules:\n  - resource: r\n    concurrency: {max: 3}\n"))
    inside = 0
    peak = 0
    blocked = 0
    lock = threading.Lock()
    deadline = time.monotonic() + 1.0

    def worker() -> None:
        nonlocal inside, peak, blocked
        while time.monotonic() < deadline:
            res = eng.entry("r", "internal")
            if isinstance(res, Blocked):
                with lock:
                    blocked += 1
                time.sleep(0.001)
                continue
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.003)
            with lock:
                inside -= 1
            res.exit()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3
    assert blocked > 0


__all__ = ["clock", "make_engine"]  # fixtures used by name

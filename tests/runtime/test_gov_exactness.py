"""Lock-free counting stays exact: threads racing with forced thread switches never pass more
than a flow window's `qps` or an isolation `max`."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from instpy.runtime.engine import Engine
from instpy.runtime.entry import Entry
from instpy.runtime.governance import parse_config

BUCKET_NS = 500_000_000


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def hammer(eng: Engine, resource: str, seconds: float, hold: bool = False) -> list[int]:
    stamps: list[int] = []
    peak = [0]
    inside = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            res = eng.entry(resource, "internal")
            if isinstance(res, Entry):
                with lock:
                    stamps.append(res.start_ns)
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                if hold:
                    time.sleep(0.0005)
                with lock:
                    inside[0] -= 1
                res.exit()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [*stamps, -peak[0]]


@pytest.mark.usefixtures("frequent_switches")
def test_flow_window_never_exceeds_qps_under_racing_threads() -> None:
    eng = Engine(parse_config("rules:\n  - resource: r\n    flow: {qps: 300}\n"))
    stamps = hammer(eng, "r", 1.6)[:-1]
    per_bucket = Counter(s // BUCKET_NS for s in stamps)
    buckets = sorted(per_bucket)
    windows = [per_bucket[b] + per_bucket.get(b - 1, 0) for b in range(buckets[0],
                                                                     buckets[-1] + 2)]
    assert max(windows) <= 300, per_bucket  # every window: a bucket and the one before it
    assert max(windows) >= 290, per_bucket  # and the limit is reached, not starved


@pytest.mark.usefixtures("frequent_switches")
def test_isolation_never_exceeds_max_under_racing_threads() -> None:
    eng = Engine(parse_config("rules:\n  - resource: r\n    concurrency: {max: 3}\n"
                              "    flow: {qps: 1000000}\n"))
    result = hammer(eng, "r", 0.8, hold=True)
    assert -result[-1] <= 3
    assert -result[-1] == 3
    assert len(result) > 10
    text = eng.metrics_text()
    assert 'instpy_requests_in_flight{resource="r"} 0' in text

"""In-process sliding-window statistics for one resource (Sentinel's LeapArray, simplified).

The window is one second made of two 500 ms buckets (Sentinel's default second-level metric).
Each bucket remembers which 500 ms slice of the clock it holds; a bucket whose slice is old is
reset by the first event that lands in it, so no background thread ever touches the counters.
Bucket slots are parallel lists rather than bucket objects: one list index per counter is the
cheapest update CPython offers.

Callers hold `lock` around every method (the engine takes it once per entry and once per exit,
and runs its checks under the same acquisition so check-then-count is atomic).
"""

from __future__ import annotations

import threading

BUCKET_NS = 500_000_000
BUCKETS = 2
WINDOW_NS = BUCKET_NS * BUCKETS
_NO_RT = 1 << 62


class LocalStats:
    """Counters for one resource: windowed (pass, block, complete, error, RT) and totals."""

    __slots__ = (
        "_blocked", "_completed", "_errors", "_flushed", "_passed", "_rt_min", "_rt_sum",
        "_slices", "inflight", "lock", "total_blocked",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inflight = 0
        self._slices = [-1] * BUCKETS
        self._passed = [0] * BUCKETS
        self._blocked = [0] * BUCKETS
        self._completed = [0] * BUCKETS
        self._errors = [0] * BUCKETS
        self._rt_sum = [0] * BUCKETS
        self._rt_min = [_NO_RT] * BUCKETS
        # Totals since start = what expired buckets held + the live buckets: folding a bucket
        # into `_flushed` when it is reused keeps per-call work to the bucket counters alone.
        self._flushed = [0, 0, 0, 0]  # passed, completed, errors, rt_ns
        self.total_blocked: dict[str, int] = {}

    def _bucket(self, now_ns: int) -> int:
        s = now_ns // BUCKET_NS
        i = s & 1
        if self._slices[i] != s:
            flushed = self._flushed
            flushed[0] += self._passed[i]
            flushed[1] += self._completed[i]
            flushed[2] += self._errors[i]
            flushed[3] += self._rt_sum[i]
            self._slices[i] = s
            self._passed[i] = self._blocked[i] = self._completed[i] = 0
            self._errors[i] = self._rt_sum[i] = 0
            self._rt_min[i] = _NO_RT
        return i

    def on_pass(self, now_ns: int) -> None:
        s = now_ns // BUCKET_NS
        i = s & 1
        if self._slices[i] != s:
            self._bucket(now_ns)
        self._passed[i] += 1
        self.inflight += 1

    def on_block(self, now_ns: int, family: str) -> None:
        self._blocked[self._bucket(now_ns)] += 1
        self.total_blocked[family] = self.total_blocked.get(family, 0) + 1

    def on_complete(self, now_ns: int, rt_ns: int, error: bool) -> None:
        s = now_ns // BUCKET_NS
        i = s & 1
        if self._slices[i] != s:
            self._bucket(now_ns)
        self._completed[i] += 1
        self._rt_sum[i] += rt_ns
        if rt_ns < self._rt_min[i]:
            self._rt_min[i] = rt_ns
        self.inflight -= 1
        if error:
            self._errors[i] += 1

    def totals(self) -> tuple[int, int, int, int]:
        """(passed, completed, errors, rt_ns) since the start of the process."""
        f = self._flushed
        return (f[0] + sum(self._passed), f[1] + sum(self._completed),
                f[2] + sum(self._errors), f[3] + sum(self._rt_sum))

    def passed(self, now_ns: int) -> int:
        """Requests passed in the last second (both live buckets)."""
        s = now_ns // BUCKET_NS
        slices = self._slices
        p = self._passed
        return (p[0] if s - slices[0] < BUCKETS else 0) + (p[1] if s - slices[1] < BUCKETS else 0)

    def window(self, now_ns: int) -> tuple[int, int, int, int, int, int]:
        """(passed, blocked, completed, errors, rt_sum_ns, rt_min_ns or 0) over the last second."""
        s = now_ns // BUCKET_NS
        out = [0, 0, 0, 0, 0]
        rt_min = _NO_RT
        for i in range(BUCKETS):
            if s - self._slices[i] < BUCKETS:
                out[0] += self._passed[i]
                out[1] += self._blocked[i]
                out[2] += self._completed[i]
                out[3] += self._errors[i]
                out[4] += self._rt_sum[i]
                rt_min = min(rt_min, self._rt_min[i])
        return out[0], out[1], out[2], out[3], out[4], (0 if rt_min == _NO_RT else rt_min)


class InboundStats(LocalStats):
    """All inbound traffic of the process, plus the history BBR needs.

    BBR compares in-flight requests with max completed QPS x min RT; both come from the last
    ten one-second slices, so a short lull does not collapse the estimate.
    """

    __slots__ = ("_history_completed", "_history_min_rt", "_history_slices")
    HISTORY = 10

    def __init__(self) -> None:
        super().__init__()
        self._history_slices = [-1] * self.HISTORY
        self._history_completed = [0] * self.HISTORY
        self._history_min_rt = [_NO_RT] * self.HISTORY

    def on_complete(self, now_ns: int, rt_ns: int, error: bool) -> None:
        super().on_complete(now_ns, rt_ns, error)
        s = now_ns // 1_000_000_000
        i = s % self.HISTORY
        if self._history_slices[i] != s:
            self._history_slices[i] = s
            self._history_completed[i] = 0
            self._history_min_rt[i] = _NO_RT
        self._history_completed[i] += 1
        if rt_ns < self._history_min_rt[i]:
            self._history_min_rt[i] = rt_ns

    def capacity(self, now_ns: int) -> float:
        """Max completed per second x min RT in seconds over the history (BBR's in-flight bound).

        The current (incomplete) second counts too: under a sudden rise it is the best sample.
        With no completed request yet there is no estimate, so nothing is bounded (infinity).
        """
        s = now_ns // 1_000_000_000
        max_completed = 0
        min_rt = _NO_RT
        for i in range(self.HISTORY):
            if s - self._history_slices[i] < self.HISTORY:
                max_completed = max(max_completed, self._history_completed[i])
                min_rt = min(min_rt, self._history_min_rt[i])
        if max_completed == 0 or min_rt == _NO_RT:
            return float("inf")
        return max_completed * min_rt / 1e9

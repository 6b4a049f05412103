"""What every per-process view of one record of the instance's segment holds.

A view caches, per process, the segment's lock operations and this worker's owner number; a
fork gives the child another worker slot and lock handle, so the segment calls `_bind` again
in the child (`Segment.rebind`). Subclasses extend `_bind` with their own per-worker offsets.
"""

from __future__ import annotations

import threading

from instpy.runtime.shared.segment import Segment
from instpy.runtime.stat.window import FREE_THREADED


class SegmentRecord:
    """The record at word `at` of `seg`. `lock` is this process's: it serialises the checks
    whose state is per process, as LocalStats' does; counters shared with other workers take
    the segment's lock (`_acquire`/`_release`)."""

    __slots__ = ("_acquire", "_at", "_owner", "_release", "_seg", "_w", "lock",
                 "total_blocked")

    def __init__(self, seg: Segment, at: int) -> None:
        self._seg = seg
        self._w = seg.words
        self._at = at
        self.total_blocked: dict[str, int] = {}  # this process's blocks (reporting)
        self._bind()
        seg.rebind.append(self._bind)

    def _bind(self) -> None:
        seg = self._seg
        self._acquire = seg.acquire
        self._release = seg.release
        self._owner = seg.worker + 1
        self.lock: threading.Lock | threading.RLock = (
            threading.RLock() if FREE_THREADED else threading.Lock())

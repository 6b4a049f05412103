"""Background CPU sampling: the check reads one float, never psutil itself."""

from __future__ import annotations

import threading

import psutil


class CpuSampler:
    """Samples whole-machine CPU usage (0-1) every `interval_s` in a daemon thread."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.usage = 0.0
        self._stop = threading.Event()
        psutil.cpu_percent(interval=None)  # primes the counter; the first reading is meaningless
        self._thread = threading.Thread(target=self._run, name="instpy-cpu", daemon=True)
        self._thread.start()

    def __call__(self) -> float:
        return self.usage

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.usage = psutil.cpu_percent(interval=None) / 100.0

    def stop(self) -> None:
        self._stop.set()

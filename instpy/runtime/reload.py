"""Poll governance.yaml and hand every changed version to the engine.

Polling (a `stat` every 250 ms) rather than inotify: it works on every platform and inside
containers with mounted ConfigMaps (which swap a symlink), and keeps the runtime stdlib-only.
A version is attempted once: an invalid edit is logged once and not retried until it changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable

LOG = logging.getLogger("instpy.governance")


class FileWatcher:
    def __init__(self, path: str, apply: Callable[[str, str], bool],
                 interval_s: float = 0.25) -> None:
        self.path = path
        self.apply = apply
        self.interval_s = interval_s
        self._signature: tuple[int, int, int] | None = None
        self._digest: bytes | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="instpy-governance-watch",
                                        daemon=True)

    def start(self) -> None:
        self.poll()  # the first version is applied before start() returns
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:  # never let the watcher die: the next poll may succeed
                LOG.exception("instpy: polling %s failed", self.path)

    def poll(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._signature is not None:
                LOG.warning(json.dumps({"event": "config_missing", "file": self.path,
                                        "action": "keeping the last good rules"}))
            self._signature = None
            return
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        # File systems with coarse timestamps can give two quick same-size edits the same
        # signature, so a recently modified file is re-read (the digest skips no-op reads).
        if signature == self._signature and time.time_ns() - st.st_mtime_ns > 2_000_000_000:
            return
        self._signature = signature
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            LOG.error(json.dumps({"event": "config_unreadable", "file": self.path,
                                  "error": str(exc)}))
            return
        digest = hashlib.sha256(data).digest()
        if digest == self._digest:
            return  # touched, not changed
        self._digest = digest
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            LOG.error(json.dumps({"event": "config_rejected", "file": self.path,
                                  "problem": f"not UTF-8 ({exc})",
                                  "fix": "save the file as UTF-8"}))
            return
        self.apply(text, self.path)

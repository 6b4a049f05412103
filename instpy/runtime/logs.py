"""Where the runtime's log lines go: the `instpy` logger, to stderr unless the service says so.

A governed service did not ask for our lines, but an operator needs them (rule applied or
rejected, blocks, breaker changes, hook failures). So the `instpy` logger gets its own stderr
handler at INFO — unless the service already configured one for it — and does not propagate, so
a service that logs everything through the root logger sees each line once.
INSTPY_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR) changes the level.
"""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s instpy %(levelname)s %(message)s"


def configure(environ: dict[str, str] | None = None) -> None:
    """Give the `instpy` logger a stderr handler once (idempotent)."""
    env = os.environ if environ is None else environ
    logger = logging.getLogger("instpy")
    if logger.handlers:
        return
    level = env.get("INSTPY_LOG_LEVEL", "INFO").strip().upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
    logger.propagate = False

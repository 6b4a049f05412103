"""Which instance a process belongs to: the key that names its shared segment.

Worker processes of one pre-fork server must agree on one key whether the master pre-loaded
the app (`gunicorn --preload`: the engine may exist before the fork) or each worker imports it
itself. The rule, first match wins:

1. `INSTPY_INSTANCE` names the instance (`process` turns sharing off: every process is its
   own instance);
2. the parent process is a gunicorn or uvicorn master: the parent's pid (its workers);
3. this process is a gunicorn master: its own pid (the master with `--preload` imports the
   app before it forks). A uvicorn process that imports the app serves it itself (with
   `--workers N` the app is imported by the workers, its children: rule 2), so it is the whole
   instance and keeps its counters in its own memory;
4. otherwise the process is the whole instance: no shared segment.
"""

from __future__ import annotations

import os
import re

import psutil

SERVERS = ("gunicorn", "uvicorn")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _is_server(pid: int, servers: tuple[str, ...] = SERVERS) -> bool:
    try:
        argv = psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return False
    for i, arg in enumerate(argv[:4]):
        name = os.path.basename(arg)
        if name.startswith(servers) and (i == 0 or argv[i - 1] == "-m" or i == 1):
            return True
    return False


def instance_key() -> str | None:
    """The instance's key (safe in a file name), or None when this process is the instance."""
    named = os.environ.get("INSTPY_INSTANCE", "").strip()
    if named:
        return None if named == "process" else _SAFE.sub("_", named)[:80]
    ppid = os.getppid()
    if ppid > 1 and _is_server(ppid):
        return f"pid{ppid}"
    if _is_server(os.getpid(), ("gunicorn",)):
        return f"pid{os.getpid()}"
    return None

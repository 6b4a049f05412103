"""ASGI services for the governed-service tests, served with uvicorn: shared by the FastAPI and
Starlette modules. The rest is web_support's and service_support's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from service_support import Dependency
from web_support import Server, start


def uvicorn(tree: Path, key: str, tmp: Path, warm_up: str) -> Iterator[Server]:
    """Serve `app:app` of the governed tree with uvicorn; GET `warm_up` starts the engine.
    Every edit of its rules is applied, even one that writes the rules already in force."""
    cmd = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", "{port}",
           "--no-access-log"]
    with Dependency() as dep:
        yield from start(cmd, tree, key, tmp, dep, warm_up, every_edit_applies=True)

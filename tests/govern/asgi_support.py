"""ASGI services for the governed-service tests: build once, serve with uvicorn, drive, stop.

Shared by the FastAPI and Starlette modules; the processes, HTTP client and waiting helpers are
`service_support`'s.
"""

from __future__ import annotations

import concurrent.futures
import http.server as http_server
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from service_support import (
    LoopbackServer,
    Reply,
    free_port,
    http,
    instpy,
    serve,
    until,
    write_rules,
)

APPLIED = '"event": "config_applied"'
REJECTED = '"event": "config_rejected"'


def build(service: Path, out: Path, key: str) -> Path:
    """`instpy build --govern` the service into a tree; return the tree."""
    done = instpy("build", str(service), "--govern", "--format", "tree", "-o", str(out),
                  "--no-cache", env={"INSTPY_LICENSE_KEY": key})
    assert done.returncode == 0, done.stderr
    return out


class Dependency(LoopbackServer):
    """A downstream service on loopback: paths starting with `/broken` answer 500, any other
    path 200; counts hits per path."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}
        self.base = f"http://127.0.0.1:{self.port}"

    def answer(self, request: http_server.BaseHTTPRequestHandler) -> tuple[int, bytes]:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if request.path.startswith("/broken"):
            return 500, b"dependency is broken"
        return 200, b"dependency says hi"


@dataclass
class Service:
    base: str
    governance: Path
    metrics_url: str
    log: Path
    dependency: Dependency
    edits: int = 0

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return http("GET", self.base + path, headers)

    def post(self, path: str) -> Reply:
        return http("POST", self.base + path)

    def metrics(self) -> str:
        return http("GET", self.metrics_url).body

    def rules(self, text: str, live: str = APPLIED, *, timeout: float = 3.0) -> float:
        """Write governance.yaml; wait until the log says it was applied (or rejected).

        Each edit ends with a comment of its own, so writing the rules already in force is still
        a change the service applies (and logs)."""
        self.edits += 1
        before = self.log.read_text().count(live)
        write_rules(self.governance, f"{text}# edit {self.edits}\n")
        return until(lambda: self.log.read_text().count(live) > before, timeout)

    def burst(self, method: str, path: str, n: int) -> list[Reply]:
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda _: http(method, self.base + path), range(n)))


def uvicorn(tree: Path, key: str, tmp: Path, warm_up: str) -> Iterator[Service]:
    """Serve `app:app` of the governed tree with uvicorn; GET `warm_up` starts the engine."""
    port, metrics_port = free_port(), free_port()
    governance = tmp / "governance.yaml"
    governance.write_text("rules: []\n")
    log = tmp / "server.log"
    with Dependency() as dep:
        env = {
            "PYTHONPATH": str(tree), "INSTPY_GOVERNANCE": str(governance),
            "INSTPY_METRICS_PORT": str(metrics_port), "INSTPY_LICENSE_KEY": key,
            "DEPENDENCY_BASE": dep.base,
        }
        cmd = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log"]
        with serve(cmd, port, env, tree, log):
            svc = Service(f"http://127.0.0.1:{port}", governance,
                          f"http://127.0.0.1:{metrics_port}/metrics", log, dep)
            svc.get(warm_up)
            until(lambda: http("GET", svc.metrics_url).status == 200, 10)
            yield svc

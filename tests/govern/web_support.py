"""Governed web services for the Django, aiohttp and urllib3 tests: build once, serve, drive.

Built on service_support (the real CLI, real servers on loopback, always stopped).
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from service_support import Dependency, Reply, free_port, http, instpy, serve, until, write_rules

APPLIED = '"event": "config_applied"'
REJECTED = '"event": "config_rejected"'


def build(service: Path, out: Path, key: str) -> Path:
    """`instpy build SERVICE --govern --format tree`; the tree's path."""
    done = instpy("build", str(service), "--govern", "--format", "tree", "-o", str(out),
                  "--no-cache", env={"INSTPY_LICENSE_KEY": key})
    assert done.returncode == 0, done.stderr
    return out


@dataclass
class Server:
    base: str
    governance: Path
    metrics_url: str
    dependency: Dependency
    log: Path

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return http("GET", self.base + path, headers)

    def burst(self, path: str, n: int) -> list[Reply]:
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda _: self.get(path), range(n)))

    def rules(self, text: str, live: str = APPLIED, *, timeout: float = 3.0) -> float:
        """Write governance.yaml; wait until the log says it was applied (or rejected)."""
        if self.governance.read_text() == text:
            return 0.0  # unchanged: nothing to reload
        before = self.log.read_text().count(live)
        write_rules(self.governance, text)
        return until(lambda: self.log.read_text().count(live) > before, timeout)

    def metrics(self) -> str:
        return http("GET", self.metrics_url).body

    def metric(self, name: str, resource: str) -> float | None:
        """The value of `name{resource="..."}`, or None when the resource has no such line."""
        pattern = re.escape(f'{name}{{resource="{resource}"') + r'[^}]*\} (\S+)'
        found = re.search(pattern, self.metrics())
        return None if found is None else float(found.group(1))


def start(cmd: Sequence[str], cwd: Path, key: str, tmp: Path, dependency: Dependency,
          warm: str, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """Serve the governed tree at `cwd` with `cmd` (`{port}` is replaced); yield it, then stop."""
    port, metrics_port = free_port(), free_port()
    governance = tmp / "governance.yaml"
    governance.write_text("rules: []\n")
    log = tmp / "server.log"
    env = {
        "PYTHONPATH": str(cwd), "PORT": str(port), "INSTPY_GOVERNANCE": str(governance),
        "INSTPY_METRICS_PORT": str(metrics_port), "INSTPY_LICENSE_KEY": key,
        "DEPENDENCY_URL": f"http://127.0.0.1:{dependency.port}/dep", **(extra_env or {}),
    }
    with serve([c.replace("{port}", str(port)) for c in cmd], port, env, cwd, log):
        server = Server(f"http://127.0.0.1:{port}", governance,
                        f"http://127.0.0.1:{metrics_port}/metrics", dependency, log)
        server.get(warm)  # the first governed request starts the engine
        until(lambda: http("GET", server.metrics_url).status == 200, 10)
        yield server

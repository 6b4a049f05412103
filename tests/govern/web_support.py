"""Governed HTTP services for the governed-service tests (aiohttp, Django, Flask, FastAPI and
Starlette, urllib3 and requests): serve a governed tree in front of a dependency, drive it.

Built on service_support (the real CLI, real servers on loopback, always stopped).
"""

from __future__ import annotations

import concurrent.futures
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from service_support import APPLIED, Dependency, Governed, Reply, governed, http


@dataclass
class Server(Governed):
    """A governed HTTP service, and the dependency it calls."""

    dependency: Dependency
    # Counts the edits where each must be applied, even one that writes the rules already in
    # force (which then ends with a comment of its own); None: such a write changes nothing.
    edits: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rules(self, text: str, live: str = APPLIED, *, timeout: float = 3.0) -> float:
        if self.edits is not None:
            self.edits += 1
            text = f"{text}# edit {self.edits}\n"
        return super().rules(text, live, timeout=timeout)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return http("GET", self.base + path, headers)

    def post(self, path: str) -> Reply:
        return http("POST", self.base + path)

    def burst(self, path: str, n: int, method: str = "GET") -> list[Reply]:
        """`n` requests at once."""
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda _: http(method, self.base + path), range(n)))

    def metric(self, name: str, resource: str) -> float | None:
        """The value of `name{resource="..."}`, or None when the resource has no such line."""
        pattern = re.escape(f'{name}{{resource="{resource}"') + r'[^}]*\} (\S+)'
        found = re.search(pattern, self.metrics())
        return None if found is None else float(found.group(1))


def start(cmd: Sequence[str], cwd: Path, key: str, tmp: Path, dependency: Dependency,
          warm: str, extra_env: dict[str, str] | None = None, *,
          every_edit_applies: bool = False) -> Iterator[Server]:
    """Serve the governed tree at `cwd` with `cmd` (`{port}` is replaced), calling `dependency`
    (`DEPENDENCY_URL` is its `/dep`, `DEPENDENCY_BASE` its root); GET `warm` starts the engine;
    yield it, then stop it."""
    env = {"DEPENDENCY_URL": f"{dependency.base}/dep", "DEPENDENCY_BASE": dependency.base,
           **(extra_env or {})}
    with governed(cmd, cwd, key, tmp, env) as served:
        server = Server(served.port, served.governance, served.log, served.metrics_url,
                        dependency, 0 if every_edit_applies else None)
        server.get(warm)  # the first governed request starts the engine
        server.ready()
        yield server


# -- behaviours every governed HTTP service shows, checked the same way whatever its framework

BREAKER_RATIO = ("    circuit_breaker: {strategy: error_ratio, threshold: 0.5, min_requests: 4, "
                 "window: 10s, recovery: 30s}\n")
BREAKER_COUNT = ("    circuit_breaker: {strategy: error_count, threshold: 3, min_requests: 3, "
                 "window: 10s, recovery: 30s}\n")


def concurrency_limit_holds(svc: Server, method: str, path: str) -> None:
    """`path` (which holds each request `ms` milliseconds and answers the peak concurrency it
    saw) limited to 2 at once: of 6 requests at once, those past the limit are answered 429
    without running."""
    svc.rules(f'rules:\n  - resource: "{method} {path}"\n    concurrency: {{max: 2}}\n')
    replies = svc.burst(f"{path}?ms=600", 6, method)
    passed = [r for r in replies if r.status == 200]
    assert 1 <= len(passed) <= 2
    assert sum(r.status == 429 for r in replies) == 6 - len(passed)
    assert max(json.loads(r.body)["peak"] for r in passed) <= 2


def query_hot_parameter_holds(svc: Server, path: str) -> None:
    """With `hot_param: {from: query, name: uid, qps: 2, burst: 0, items: {"vip-1": 100}}` on
    `path` in force: one value is held to its limit, the exception's is not."""
    plain = [svc.get(f"{path}?uid=u1").status for _ in range(8)]
    assert plain.count(200) <= 3 and plain.count(429) >= 5
    assert all(svc.get(f"{path}?uid=vip-1").status == 200 for _ in range(8))


def breaker_opens_on_failures(svc: Server, resource: str, path: str) -> None:
    """`path` always fails (answers "broken"): an error-ratio breaker opens after 4 calls and
    answers with its fallback."""
    svc.rules(f'rules:\n  - resource: "{resource}"\n' + BREAKER_RATIO
              + '    fallback: {status: 503, body: "flaky is switched off"}\n')
    replies = [svc.get(path) for _ in range(8)]
    assert [r.body for r in replies[:4]] == ["broken"] * 4
    assert replies[-1].status == 503 and replies[-1].body == "flaky is switched off"
    assert svc.metric("instpy_circuit_breaker_state", resource) == 1


def client_breaker_opens_on_connection_errors(svc: Server, dead_url: str, path: str) -> None:
    """`path` calls `dead_url`, where nothing listens (and answers "dependency down"): the
    outbound breaker counts the connection errors, opens, and answers with its fallback."""
    resource = "GET " + dead_url
    svc.rules(f'rules:\n  - resource: "{resource}"\n' + BREAKER_COUNT
              + '    fallback: {status: 503, body: "breaker open"}\n')
    replies = [svc.get(path) for _ in range(5)]
    assert [r.body for r in replies[:3]] == ["dependency down"] * 3
    assert replies[-1].status == 503 and replies[-1].body == "breaker open"
    assert svc.metric("instpy_circuit_breaker_state", resource) == 1

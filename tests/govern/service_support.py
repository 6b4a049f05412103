"""Real processes on loopback for the governed-service tests: build, serve, drive, stop."""

from __future__ import annotations

import http.server as http_server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
# What a governed service logs when it applied (or rejected) an edit of governance.yaml.
APPLIED = '"event": "config_applied"'
REJECTED = '"event": "config_rejected"'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def instpy(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "instpy", *args], capture_output=True, text=True, check=False,
        env={**os.environ, **(env or {})}, cwd=REPO,
    )


def mint_key(namespace: str = "shop") -> str:
    out = instpy("license", "new", "--namespace", namespace)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def build(service: Path, out: Path, key: str, *options: str) -> str:
    """`instpy build SERVICE --govern OPTIONS -o OUT --no-cache`, bound to `key`; asserts it
    succeeded and returns what it printed."""
    done = instpy("build", str(service), "--govern", *options, "-o", str(out), "--no-cache",
                  env={"INSTPY_LICENSE_KEY": key})
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def build_tree(service: Path, out: Path, key: str) -> Path:
    """The governed tree of `service` at `out`."""
    build(service, out, key, "--format", "tree")
    return out


@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def http(method: str, url: str, headers: Mapping[str, str] | None = None,
         timeout: float = 10) -> Reply:
    req = urllib.request.Request(url, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Reply(resp.status, resp.read().decode(), dict(resp.headers.items()))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read().decode(), dict(exc.headers.items()))


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} in {timeout}s:\n{log.read_text()}")


@contextmanager
def serve(cmd: Sequence[str], port: int, env: Mapping[str, str], cwd: Path,
          log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until it listens, and always stop it."""
    with log.open("wb") as out:
        proc = subprocess.Popen(list(cmd), cwd=cwd, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(port, proc, log)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_S = TypeVar("_S", bound="LoopbackServer")


class LoopbackServer:
    """A tiny threaded HTTP server on 127.0.0.1 standing in for a downstream service.

    Subclasses say how to answer a GET in `answer`; use it as a context manager.
    """

    def __init__(self) -> None:
        owner = self

        class Handler(http_server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = owner.answer(self)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, request: http_server.BaseHTTPRequestHandler) -> tuple[int, bytes]:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Dependency(LoopbackServer):
    """A downstream service on loopback: paths starting with `/broken` answer 500, any other
    path 200 with a fixed body; counts its calls, in all (`hits`) and per path (`paths`)."""

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0
        self.paths: dict[str, int] = {}
        self.base = f"http://127.0.0.1:{self.port}"

    def answer(self, request: http_server.BaseHTTPRequestHandler) -> tuple[int, bytes]:
        self.hits += 1
        self.paths[request.path] = self.paths.get(request.path, 0) + 1
        if request.path.startswith("/broken"):
            return 500, b"dependency is broken"
        return 200, b"dependency says hi"


def write_rules(path: Path, text: str) -> None:
    """Replace governance.yaml atomically, as an editor or a ConfigMap update does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def until(predicate: object, timeout: float = 3.0) -> float:
    """Poll `predicate()` until true; return the seconds it took (raise on timeout)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


@dataclass
class Governed:
    """A governed service being served: its port, its governance.yaml, its log, its metrics."""

    port: int
    governance: Path
    log: Path
    metrics_url: str

    def metrics(self) -> str:
        return http("GET", self.metrics_url).body

    def rules(self, text: str, live: str = APPLIED, *, timeout: float = 3.0) -> float:
        """Write governance.yaml; wait until the log says it was applied (or rejected)."""
        if self.governance.read_text() == text:
            return 0.0  # unchanged: nothing to reload
        before = self.log.read_text().count(live)
        write_rules(self.governance, text)
        return until(lambda: self.log.read_text().count(live) > before, timeout)

    def ready(self) -> None:
        """Wait for the metrics endpoint, which the first governed request starts."""
        until(lambda: http("GET", self.metrics_url).status == 200, 10)


@contextmanager
def governed(cmd: Sequence[str], tree: Path, key: str, tmp: Path,
             env: Mapping[str, str] | None = None, rules: str = "rules: []\n",
             ) -> Iterator[Governed]:
    """Serve the governed tree with `cmd` (`{port}` is replaced; the port is also in `PORT`),
    governance.yaml starting as `rules`; `env` adds to or overrides what it is given."""
    port, metrics_port = free_port(), free_port()
    governance = tmp / "governance.yaml"
    governance.write_text(rules)
    log = tmp / "server.log"
    full_env = {
        "PYTHONPATH": str(tree), "PORT": str(port), "INSTPY_GOVERNANCE": str(governance),
        "INSTPY_METRICS_PORT": str(metrics_port), "INSTPY_LICENSE_KEY": key, **(env or {}),
    }
    with serve([c.replace("{port}", str(port)) for c in cmd], port, full_env, tree, log):
        yield Governed(port, governance, log, f"http://127.0.0.1:{metrics_port}/metrics")


def probe(code: str, tree: Path, key: str, governance: Path, *options: str,
          **env: str) -> tuple[Any, str]:
    """Run `code` on the governed tree in a process of its own (`options` go to the interpreter,
    `env` adds to the governed environment); assert it succeeded. Its last line of output read
    as JSON, and what it wrote to stderr."""
    done = subprocess.run(
        [sys.executable, *options, "-c", code], cwd=tree, capture_output=True, text=True,
        check=False, timeout=60,
        env={"PYTHONPATH": str(tree), "INSTPY_GOVERNANCE": str(governance),
             "INSTPY_LICENSE_KEY": key, **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr

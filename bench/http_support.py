"""Helpers of bench/http_rps.py: build the two variants of a service, serve them, load them.

Also a small load generator (`python bench/http_support.py load URL ...`) used when `wrk` is not
installed: HTTP/1.1 keep-alive GETs on N connections from one asyncio process, bounded in count
and time, printing one JSON line; and `inprocess`, which prices the governed request path in
microseconds: one process serves the app's requests itself (no sockets, no server), in blocks
alternating governance on and off (every injected target switched), so the two arms share the
process, its caches and the machine's momentary load.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RUNTIME_DISTRIBUTIONS = {"instpy-runtime"}


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    errors: int  # non-2xx answers and socket errors

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def instpy(*args: str, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "instpy", *args], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, **(env or {})}, check=False)
    if done.returncode != 0:
        raise SystemExit(f"instpy {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def build_governed(service: Path, out: Path, key: str) -> dict[str, object]:
    """`instpy build --govern`, the real thing; returns the manifest."""
    instpy("build", str(service), "--govern", "-o", str(out), env={"INSTPY_LICENSE_KEY": key})
    manifest: dict[str, object] = json.loads((out / "instpy-manifest.json").read_text())
    return manifest


def build_plain(service: Path, out: Path, manifest: Mapping[str, object]) -> None:
    """The same service with the same distributions at the same versions, none rewritten."""
    dists = manifest["distributions"]
    assert isinstance(dists, list)
    pins = [f"{d['name']}=={d['version']}" for d in dists
            if d["name"] not in RUNTIME_DISTRIBUTIONS and not d.get("project")]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--target", str(out), *pins],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pip install of the plain variant failed:\n{done.stderr}")
    for item in service.iterdir():
        if item.name != "__pycache__":
            copy = shutil.copytree if item.is_dir() else shutil.copy2
            copy(item, out / item.name)


@contextmanager
def serve(cmd: Sequence[str], cwd: Path, port: int, env: Mapping[str, str],
          log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server on 127.0.0.1:port from `cwd` (its only import path), always stop it."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("INSTPY_", "PYTHON", "VIRTUAL_ENV"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env={**clean, "PYTHONPATH": str(cwd), **env},
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}:\n{log.read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"server did not listen on {port}:\n{log.read_text()}")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a server and its workers so far."""
    import psutil  # an instpy dependency

    total = 0.0
    root = psutil.Process(pid)
    for proc in (root, *root.children(recursive=True)):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def get(port: int, path: str) -> str:
    """One GET on loopback; returns the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).partition(b"\r\n\r\n")[2].decode()


# -- load ----------------------------------------------------------------------------------

_WRK_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(m?s)")
_WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses: (\d+)|Socket errors: connect (\d+), "
                         r"read (\d+), write (\d+), timeout (\d+)")


def wrk(url: str, connections: int, seconds: float) -> Load:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    match = _WRK_REQUESTS.search(out)
    if not match:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    elapsed = float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    errors = sum(int(n) for m in _WRK_ERRORS.finditer(out) for n in m.groups() if n)
    return Load(int(match.group(1)), elapsed, errors)


def python_client(url: str, connections: int, seconds: float, max_requests: int) -> Load:
    """This file's own load generator, in a separate process."""
    out = subprocess.run(
        [sys.executable, __file__, "load", url, "--connections", str(connections),
         "--seconds", str(seconds), "--max-requests", str(max_requests)],
        capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    data = json.loads(out)
    return Load(int(data["requests"]), float(data["seconds"]), int(data["errors"]))


async def _connection(host: str, port: int, request: bytes, deadline: float,
                      budget: list[int], tally: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            tally[0] += 1
            if head[9:10] != b"2":
                tally[1] += 1
    except (OSError, asyncio.IncompleteReadError):
        tally[1] += 1
    finally:
        writer.close()


async def _load(url: str, connections: int, seconds: float, max_requests: int) -> Load:
    hostport, _, path = url.removeprefix("http://").partition("/")
    host, _, port = hostport.partition(":")
    request = (f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: bench\r\n\r\n").encode()
    budget, tally = [max_requests], [0, 0]
    start = time.monotonic()
    await asyncio.gather(*(_connection(host, int(port or 80), request, start + seconds, budget,
                                       tally) for _ in range(connections)))
    return Load(tally[0], time.monotonic() - start, tally[1])


# -- in-process price of the governed path -------------------------------------------------


@dataclass(frozen=True)
class InProcess:
    plain_us: float  # median per-request CPU time with every target off
    delta_us: float  # median of the per-pair (on - off) differences
    low_us: float
    high_us: float
    blocks: int


def inprocess(kind: str, tree: Path, env: Mapping[str, str], path: str,
              blocks: int = 20, per: int = 300) -> InProcess:
    """Run `inprocess` in a fresh interpreter with `tree` as its only import path."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("INSTPY_", "PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [sys.executable, "-S", __file__, "inprocess", kind, path, "--blocks", str(blocks),
         "--per", str(per)],
        capture_output=True, text=True, cwd=tree, timeout=600, check=False,
        env={**clean, "PYTHONPATH": str(tree), **env})
    if done.returncode != 0:
        raise SystemExit(f"in-process run failed:\n{done.stdout}\n{done.stderr}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return InProcess(data["plain_us"], data["delta_us"], data["low_us"], data["high_us"], blocks)


def _wsgi_request(app: Any, path: str) -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
               "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
               "HTTP_HOST": "127.0.0.1", "HTTP_USER_AGENT": "bench", "SCRIPT_NAME": "",
               "REMOTE_ADDR": "127.0.0.1"}
    status: list[str] = []
    body = app(environ, lambda s, h, e=None: status.append(s))
    for _ in body:
        pass
    getattr(body, "close", lambda: None)()
    if not status or not status[0].startswith("2"):
        raise SystemExit(f"GET {path} answered {status}")


async def _asgi_request(app: Any, path: str) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
             "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"bench")]}
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if not sent or not 200 <= sent[0].get("status", 0) < 300:
        raise SystemExit(f"GET {path} answered {sent[:1]}")


def _inprocess_main(kind: str, path: str, blocks: int, per: int) -> None:
    import statistics

    sys.path.insert(0, os.getcwd())
    app = importlib.import_module("app").app
    from instpy.runtime import injected

    targets = injected.all_targets()
    if not targets or not all(t.active for t in targets):
        raise SystemExit(f"governance is not on in this tree: {targets}")
    loop = asyncio.new_event_loop()

    def block(on: bool) -> float:
        for target in targets:
            target.active = on
        start = time.thread_time()
        if kind == "wsgi":
            for _ in range(per):
                _wsgi_request(app, path)
        else:
            async def run() -> None:
                for _ in range(per):
                    await _asgi_request(app, path)

            loop.run_until_complete(run())
        return (time.thread_time() - start) / per * 1e6

    block(True), block(False)  # warm up: imports, the engine, caches
    off: list[float] = []
    deltas: list[float] = []
    for n in range(blocks):
        first = n % 2 == 0
        a = block(first)
        b = block(not first)
        on_us, off_us = (a, b) if first else (b, a)
        off.append(off_us)
        deltas.append(on_us - off_us)
    quartiles = statistics.quantiles(deltas, n=4)
    print(json.dumps({"plain_us": statistics.median(off), "delta_us": statistics.median(deltas),
                      "low_us": quartiles[0], "high_us": quartiles[2]}))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Keep-alive HTTP/1.1 GET load on loopback.")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load")
    load.add_argument("url")
    load.add_argument("--connections", type=int, default=16)
    load.add_argument("--seconds", type=float, default=3.0)
    load.add_argument("--max-requests", type=int, default=200_000)
    inproc = sub.add_parser("inprocess")
    inproc.add_argument("kind", choices=("wsgi", "asgi"))
    inproc.add_argument("path")
    inproc.add_argument("--blocks", type=int, default=20)
    inproc.add_argument("--per", type=int, default=300)
    args = parser.parse_args(argv)
    if args.command == "inprocess":
        _inprocess_main(args.kind, args.path, args.blocks, args.per)
        return
    if not args.url.startswith("http://127.0.0.1:"):
        raise SystemExit("loopback only: the URL must start with http://127.0.0.1:")
    result = asyncio.run(_load(args.url, args.connections, args.seconds, args.max_requests))
    print(json.dumps({"requests": result.requests, "seconds": result.seconds,
                      "errors": result.errors}))


if __name__ == "__main__":
    main()

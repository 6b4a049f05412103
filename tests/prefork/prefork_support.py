"""Governed pre-fork servers on loopback: build a fixture, serve it with N workers, drive it
with a paced load of fresh connections, and read the per-request log the service writes."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from instpy.runtime.shared.segment import remove_stale

REPO = Path(__file__).resolve().parents[2]
RULES = """rules:
  - resource: "GET /limited"
    flow: {qps: 100}
  - resource: "GET /pool"
    concurrency: {max: 4}
"""


def instpy(*args: str, key: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INSTPY_LICENSE_KEY": key} if key else dict(os.environ)
    return subprocess.run([sys.executable, "-m", "instpy", *args], capture_output=True,
                          text=True, check=False, env=env, cwd=REPO, timeout=300)


def build(service: str, out: Path) -> tuple[Path, str]:
    """`instpy build --govern` a fixture into a tree; the tree and the license key."""
    minted = instpy("license", "new", "--namespace", "prefork")
    assert minted.returncode == 0, minted.stderr
    key = minted.stdout.strip().splitlines()[-1]
    done = instpy("build", str(REPO / "fixtures" / service), "--govern", "--format", "tree",
                  "-o", str(out), "--no-cache", key=key)
    assert done.returncode == 0, done.stderr
    return out, key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 15) -> int:
    """One request on a fresh connection (no keep-alive: see uvicorn's delayed ACK)."""
    req = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    requests: Path
    log: Path

    def lines(self, path: str) -> list[tuple[int, int, int]]:
        """(pid, start_ns, end_ns) of every logged request of `path`."""
        out = []
        for line in self.requests.read_text().splitlines():
            pid, start, end, p = line.split()
            if p == path:
                out.append((int(pid), int(start), int(end)))
        return out


@contextmanager
def serve(cmd: list[str], tree: Path, key: str, tmp: Path,
          sweep_after: bool = True) -> Iterator[Server]:
    port = free_port()
    governance = tmp / "governance.yaml"
    governance.write_text(RULES)
    requests, log = tmp / "requests.log", tmp / "server.log"
    requests.write_text("")
    env = {**os.environ, "PYTHONPATH": str(tree), "INSTPY_GOVERNANCE": str(governance),
           "INSTPY_LICENSE_KEY": key, "REQUEST_LOG": str(requests),
           "INSTPY_SHM_DIR": str(tmp)}
    env.pop("INSTPY_INSTANCE", None)
    with log.open("wb") as out:
        proc = subprocess.Popen([c.replace("{port}", str(port)) for c in cmd], cwd=tree,
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            server = Server(f"http://127.0.0.1:{port}", proc, requests, log)
            warm_up(server)
            yield server
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if sweep_after:
                # What workers that died by a signal left (see the stopped-server test):
                # the sweep a next start would run, so a test leaves no semaphore behind.
                remove_stale(str(tmp), keep="", min_age_s=0.0)


def warm_up(server: Server, workers: int = 4) -> None:
    """Reach every worker once (each starts its engine on its first governed request)."""
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while len(seen) < workers and time.monotonic() < deadline:
            def pid(_: int) -> str:
                with urllib.request.urlopen(server.base + "/pid", timeout=60) as r:
                    return str(r.read().decode())
            seen.update(pool.map(pid, range(16)))
            get(server.base + "/pool?hold=0")
    assert len(seen) >= workers, f"only reached workers {seen}"
    time.sleep(0.3)
    server.requests.write_text("")


def raw_get(base: str, path: str) -> int:
    """The load's request: a bare HTTP/1.1 GET on a fresh connection, status line only (a
    loopback client in Python must be cheap to keep a 2x overload on two cores)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                  .encode())
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(256)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


def paced_load(base: str, path: str, rate: float, seconds: float) -> list[int]:
    """`rate` requests per second for `seconds`, each on a fresh connection, sent at times
    away from the engine's 500 ms bucket boundaries (monotonic clock, the
    same in every process of the host). Bounded: at most 64 in flight."""
    period_ns = int(1e9 / rate)
    now = time.monotonic_ns()
    first = (now // 500_000_000 + 1) * 500_000_000 + period_ns // 4
    n = int(rate * seconds)
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        futures = []
        for i in range(n):
            at = first + i * period_ns
            if at % 500_000_000 > 485_000_000:
                # None in the last 15 ms of a bucket: the service logs a call a little after
                # the engine admitted it, and must log it in the bucket that counted it.
                continue
            delay = (at - time.monotonic_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(raw_get, base, path))
        return [f.result() for f in futures]


def windows(starts: list[int], offset_ns: int = 0) -> list[int]:
    """Requests per one-second window (aligned to the monotonic second + offset), the first
    and last (partly outside the load) left out."""
    counts: dict[int, int] = {}
    for s in starts:
        k = (s - offset_ns) // 1_000_000_000
        counts[k] = counts.get(k, 0) + 1
    if not counts:
        return []
    lo, hi = min(counts), max(counts)
    return [counts.get(k, 0) for k in range(lo + 1, hi)]


def peak_concurrency(intervals: list[tuple[int, int]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                    key=lambda x: (x[0], x[1]))
    peak = cur = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak

"""Requests per second of one service, plain vs governed, in the same run, on loopback.

(Issue 5 calls this `bench/http.py`; a file of that name makes mypy, which checks bench/ as
top-level modules, read it as the standard library's `http` everywhere.)

For a WSGI service (fixtures/bench_wsgi: Flask under gunicorn, one gthread worker) and an ASGI
service (fixtures/bench_asgi: Starlette under uvicorn, one worker), this builds the governed
variant with the real `instpy build --govern` (a fresh license key), the plain variant from the
same distributions at the same versions, serves both at once, and loads them in turn from another
process (`wrk` if installed, else bench/http_support.py's client), alternating which goes first
(plain, governed, governed, plain, ...) because the machine is shared and noisy. The governed
service runs an active rule that never blocks (a flow limit far above the load) with statistics
on; at the end its /metrics must account for every request it answered.

Requests per second on two shared cores swing by tens of percent between rounds, so each
service is also priced in process (bench/http_support.py `inprocess`): the governed tree serves
requests itself, no server or sockets, in blocks alternating every injected target on and off;
the median per-request CPU-time difference is what governance adds, set against the CPU a plain
request costs under the server (the budget a 97 % target leaves).

Usage: python bench/http_rps.py [--services wsgi,asgi] [--rounds 6] [--seconds 3]
                                [--connections 16] [--client auto|wrk|python]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from http_support import (
    REPO,
    Load,
    build_governed,
    build_plain,
    cpu_seconds,
    free_port,
    get,
    inprocess,
    instpy,
    python_client,
    serve,
    wrk,
)

TARGET = 0.97
PATH = "/items/7"


@dataclass(frozen=True)
class Service:
    name: str
    fixture: str
    resource: str  # the governed endpoint, under the framework's route template
    command: Callable[[int], list[str]]


SERVICES = {
    "wsgi": Service(
        "wsgi: Flask under gunicorn (1 worker, gthread x4)", "bench_wsgi",
        "GET /items/<int:item_id>",
        lambda port: [sys.executable, "-S", "-m", "gunicorn", "-w", "1", "-k", "gthread",
                      "--threads", "4", "-b", f"127.0.0.1:{port}", "app:app"],
    ),
    "asgi": Service(
        "asgi: Starlette under uvicorn (1 worker)", "bench_asgi",
        "GET /items/{item_id:int}",
        lambda port: [sys.executable, "-S", "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                      "--port", str(port), "--workers", "1", "--no-access-log",
                      "--log-level", "warning"],
    ),
}

@dataclass(frozen=True)
class Result:
    median: float  # of the per-round governed/plain rps ratios
    low: float
    high: float
    best: float  # best governed round / best plain round
    cpu: float  # median of the per-round ratios of requests per server CPU-second
    plain_us: float  # in process, per request: the app with every target off
    delta_us: float  # in process: what governance adds per request (median of pairs)


GOVERNANCE = """\
rules:
  - resource: "{resource}"
    flow: {{qps: 1000000}}
metrics:
  inbound: true
"""


def _metric(text: str, name: str, resource: str) -> int:
    total = 0
    for line in text.splitlines():
        if line.startswith(f'{name}{{resource="{resource}"'):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def bench(svc: Service, key: str, work: Path, args: argparse.Namespace,
          load: Callable[[str, float], Load]) -> Result:
    fixture = REPO / "fixtures" / svc.fixture
    governed, plain = work / f"{svc.fixture}-governed", work / f"{svc.fixture}-plain"
    manifest = build_governed(fixture, governed, key)
    build_plain(fixture, plain, manifest)
    versions = ", ".join(f"{d['name']} {d['version']}" for d in manifest["distributions"]  # type: ignore[attr-defined]
                         if d["rewritten"])
    print(f"\n{svc.name}; rewritten: {versions}")
    rules = work / f"{svc.fixture}-governance.yaml"
    rules.write_text(GOVERNANCE.format(resource=svc.resource))
    ports = {"plain": free_port(), "governed": free_port()}
    metrics_port = free_port()
    envs = {"plain": {}, "governed": {"INSTPY_LICENSE_KEY": key, "INSTPY_GOVERNANCE": str(rules),
                                      "INSTPY_METRICS_PORT": str(metrics_port)}}
    trees = {"plain": plain, "governed": governed}
    served = {"plain": 0, "governed": 0}
    pids: dict[str, int] = {}
    with ExitStack() as stack:
        for arm in ("plain", "governed"):
            pids[arm] = stack.enter_context(serve(
                svc.command(ports[arm]), trees[arm], ports[arm], envs[arm],
                work / f"{svc.fixture}-{arm}.log")).pid

        def run(arm: str, seconds: float) -> tuple[float, float]:
            """(requests per second, requests per CPU-second of the server)"""
            cpu = cpu_seconds(pids[arm])
            result = load(f"http://127.0.0.1:{ports[arm]}{PATH}", seconds)
            cpu = cpu_seconds(pids[arm]) - cpu
            if result.errors:
                raise SystemExit(f"{arm}: {result.errors} errors under load; see "
                                 f"{work / (svc.fixture + '-' + arm + '.log')}")
            served[arm] += result.requests
            return result.rps, result.requests / cpu if cpu > 0 else 0.0

        for arm in ("plain", "governed"):  # warm up: imports, the engine, caches
            run(arm, 1.0)
        print(f"{'round':>5}  {'plain rps':>10}  {'governed rps':>12}  {'ratio':>6}    "
              f"{'plain req/cpu-s':>15}  {'governed req/cpu-s':>18}  {'ratio':>6}")
        ratios, cpu_ratios, plain_cpu = [], [], []
        best = {"plain": 0.0, "governed": 0.0}
        for n in range(args.rounds):
            order = ("plain", "governed") if n % 2 == 0 else ("governed", "plain")
            rps = {arm: run(arm, args.seconds) for arm in order}
            ratios.append(rps["governed"][0] / rps["plain"][0])
            cpu_ratios.append(rps["governed"][1] / rps["plain"][1])
            plain_cpu.append(rps["plain"][1])
            best = {arm: max(best[arm], rps[arm][0]) for arm in best}
            print(f"{n + 1:>5}  {rps['plain'][0]:10.0f}  {rps['governed'][0]:12.0f}  "
                  f"{ratios[-1]:6.3f}    {rps['plain'][1]:15.0f}  {rps['governed'][1]:18.0f}  "
                  f"{cpu_ratios[-1]:6.3f}")
        text = get(metrics_port, "/metrics")
    passed = _metric(text, "instpy_requests_passed_total", svc.resource)
    blocked = _metric(text, "instpy_requests_blocked_total", svc.resource)
    if blocked or passed < served["governed"]:
        raise SystemExit(f"the governed service did not govern every request: {passed} passed, "
                         f"{blocked} blocked, {served['governed']} answered")
    # The same governed tree in one process, targets switched on and off block by block: the
    # price of the governed path in microseconds, free of the server, the sockets and the
    # machine's momentary load. The instance store as under the server (a named instance).
    priced = inprocess(svc.fixture.removeprefix("bench_"), governed,
                       {**envs["governed"], "INSTPY_METRICS_PORT": "",
                        "INSTPY_INSTANCE": f"bench-inprocess-{svc.fixture}"}, PATH)
    result = Result(statistics.median(ratios), min(ratios), max(ratios),
                    best["governed"] / best["plain"], statistics.median(cpu_ratios),
                    priced.plain_us, priced.delta_us)
    print(f"rps ratio: median {result.median:.3f} (min {result.low:.3f}, max {result.high:.3f}),"
          f" best/best {result.best:.3f}; req/cpu-s ratio: median {result.cpu:.3f}; "
          f"governance passed {passed} requests of {served['governed']} answered, blocked 0")
    server_us = 1e6 / statistics.median(plain_cpu) if plain_cpu else 0.0
    print(f"in process (no server; CPU time, {priced.blocks} blocks on/off): the app "
          f"{priced.plain_us:.1f} us/request, governance adds {priced.delta_us:.1f} us "
          f"(quartiles {priced.low_us:.1f} .. {priced.high_us:.1f}); under the server a plain "
          f"request costs {server_us:.0f} us of server CPU, so {TARGET:.0%} leaves "
          f"{server_us * (1 - TARGET):.1f} us for governance")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--services", default="wsgi,asgi")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--max-requests", type=int, default=500_000,
                        help="per round, for the Python client (wrk is bounded by time)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    names = [n.strip() for n in args.services.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVICES]
    if unknown or not 1 <= args.rounds <= 50 or not 0.5 <= args.seconds <= 30 \
            or not 1 <= args.connections <= 256:
        raise SystemExit("services are wsgi/asgi; rounds 1-50, seconds 0.5-30, connections "
                         "1-256 (the load is bounded)")
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"

    def load(url: str, seconds: float) -> Load:
        if client == "wrk":
            return wrk(url, args.connections, seconds)
        return python_client(url, args.connections, seconds, args.max_requests)

    print(f"load: {client}, {args.connections} keep-alive connections, {args.rounds} rounds of "
          f"{args.seconds:g}s per variant, loopback; GET {PATH}")
    key = re.split(r"\s+", instpy("license", "new", "--namespace", "bench").strip())[-1]
    summary = {}
    with tempfile.TemporaryDirectory(prefix="instpy-bench-http-") as tmp:
        for name in names:
            summary[name] = bench(SERVICES[name], key, Path(tmp), args, load)
    print()
    print(f"governed / plain, {args.rounds} interleaved rounds each (target >= {TARGET}):")
    for name, r in summary.items():
        verdict = "ok" if min(r.median, r.cpu) >= TARGET else "BELOW TARGET"
        if r.high - r.low > 0.2:
            verdict += " (rounds disagree by more than 20 %: the machine is busy, run it again)"
        print(f"  {name}: rps median {r.median:.3f}, best/best {r.best:.3f}, "
              f"requests per server CPU-second median {r.cpu:.3f}: {verdict}; "
              f"in process +{r.delta_us:.1f} us on {r.plain_us:.1f} us")


if __name__ == "__main__":
    main()

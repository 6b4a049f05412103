"""Starlette's `Route.handle` governor, in process on the governed build of Starlette.

From its second call on, the route handler of a governed build runs without the generic hook
dispatch (instpy/runtime/hooks/starlette.py `_Governor`). Each probe here drives an app of its
own through the real ASGI interface, in a process of its own on the governed tree, and checks
what the governor must keep of the hooks: the first call (through the dispatch) and later ones
counted alike, how a request ended (a 5xx answer or an exception is the endpoint's failure, a
4xx is not), a blocked request answered with its fallback without running the endpoint, a
throttled one paced on the loop, and fail open.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from governor_support import run_probe
from service_support import REPO, build_tree

pytest_plugins = ["fixture_support"]  # key

APP = """\
import asyncio, json, sys
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from instpy.runtime.hooks import starlette as hook

ran = []

async def ok(request):
    ran.append("ok")
    return PlainTextResponse("ok")

async def answer(request):
    return PlainTextResponse("code", status_code=int(request.path_params["code"]))

async def boom(request):
    raise RuntimeError("boom")

async def missing(request):
    raise HTTPException(status_code=404)

app = Starlette(routes=[Route("/ok", ok), Route("/answer/{code}", answer),
                        Route("/boom", boom), Route("/missing", missing)])

async def get(path):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"t")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    try:
        await app(scope, receive, send)
    except RuntimeError:
        return "raised"
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body.decode()

def governed():
    return governor("starlette.routing:Route.handle")
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build_tree(REPO / "fixtures" / "starlette_app",
                      tmp_path_factory.mktemp("starlette-governor") / "tree", key)


def test_first_and_later_calls_count_alike_and_how_each_ended(
        tree: Path, key: str, tmp_path: Path) -> None:
    out = run_probe(tree, key, tmp_path, "rules: []\n", APP + """
async def main():
    first = await get("/ok")  # through the hook dispatch; it installs the governor
    installed = governed()
    later = [await get("/ok") for _ in range(3)]
    codes = [await get(f"/answer/{c}") for c in (200, 404, 500, 503)]
    raised = await get("/boom")
    missing = await get("/missing")
    return {"first": first, "installed": installed, "later": later, "codes": codes,
            "raised": raised, "missing": missing, "ok": totals("GET /ok"),
            "answer": totals("GET /answer/{code}"), "boom": totals("GET /boom"),
            "missing_totals": totals("GET /missing"),
            "inflight": engine().statistics().stats("GET /ok").inflight}
print(json.dumps(asyncio.run(main())))
""")
    assert out["first"] == [200, "ok"] and out["later"] == [[200, "ok"]] * 3
    assert out["installed"] == "_Governor"
    assert [c[0] for c in out["codes"]] == [200, 404, 500, 503]
    assert out["raised"] == "raised"
    assert out["missing"][0] == 404
    # passed, completed, errors: the first call exits like the others
    assert out["ok"] == [4, 4, 0] and out["inflight"] == 0
    assert out["answer"] == [4, 4, 2]  # the 500 and the 503, not the 404
    assert out["boom"] == [1, 1, 1]
    assert out["missing_totals"] == [1, 1, 0]  # an HTTPException 4xx is the caller's


def test_blocked_requests_get_the_fallback_and_never_run(
        tree: Path, key: str, tmp_path: Path) -> None:
    rules = ('rules:\n  - resource: "GET /ok"\n    flow: {qps: 2}\n'
             '    fallback: {status: 503, body: busy}\n')
    out = run_probe(tree, key, tmp_path, rules, APP + """
async def main():
    replies = [await get("/ok") for _ in range(6)]
    return {"replies": replies, "ran": len(ran), "ok": totals("GET /ok"),
            "installed": governed()}
print(json.dumps(asyncio.run(main())))
""")
    assert out["installed"] == "_Governor"
    assert out["replies"] == [[200, "ok"]] * 2 + [[503, "busy"]] * 4
    assert out["ran"] == 2
    assert out["ok"] == [2, 2, 0]


def test_throttled_requests_are_paced_on_the_loop(tree: Path, key: str, tmp_path: Path) -> None:
    rules = ('rules:\n  - resource: "GET /ok"\n'
             '    flow: {qps: 10, behavior: throttling, max_queueing: 2s}\n')
    out = run_probe(tree, key, tmp_path, rules, APP + """
import time
async def main():
    await get("/ok")
    ticks = []

    async def tick():  # runs while requests wait: the loop is never blocked
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    start = time.monotonic()
    replies = await asyncio.gather(*(get("/ok") for _ in range(5)))
    took = time.monotonic() - start
    ticker.cancel()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    return {"replies": replies, "took": took, "max_gap": max(gaps), "ok": totals("GET /ok")}
print(json.dumps(asyncio.run(main())))
""")
    assert out["replies"] == [[200, "ok"]] * 5
    assert out["took"] >= 0.35  # one request per 100 ms after the first
    assert out["max_gap"] < 0.2  # the waits were the loop's own sleeps
    assert out["ok"] == [6, 6, 0]


def test_a_failing_governor_fails_open_counted_and_logged_once(
        tree: Path, key: str, tmp_path: Path) -> None:
    rules = 'rules:\n  - resource: "GET /ok"\n    flow: {qps: 1000}\n'
    out = run_probe(tree, key, tmp_path, rules, APP + """
from instpy.runtime.hooks import http
async def main():
    await get("/ok")
    res = http.kept_inbound("GET", "/ok")

    def broken(lookup):
        raise ValueError("broken enter")

    res.enter_nowait = broken
    replies = [await get("/ok") for _ in range(3)]
    return {"replies": replies, "ran": len(ran), "failures": injected.hook_failures(),
            "installed": governed()}
print(json.dumps(asyncio.run(main())))
""")
    assert out["replies"] == [[200, "ok"]] * 3 and out["ran"] == 4
    assert out["failures"] == {"instpy.runtime.hooks.starlette:on_enter": 3}
    assert out["installed"] == "_Governor"


def test_the_app_sees_exactly_what_it_would_ungoverned(
        tree: Path, key: str, tmp_path: Path) -> None:
    # Same answers and messages with the target on and off (governance loaded, no rule).
    out = run_probe(tree, key, tmp_path, "rules: []\n", APP + """
async def main():
    (target,) = injected.targets("starlette.routing:Route.handle")
    paths = ["/ok", "/answer/201", "/answer/500", "/missing", "/boom", "/nowhere"]
    on = [await get(p) for p in paths]
    target.active = False
    off = [await get(p) for p in paths]
    return {"on": on, "off": off}
print(json.dumps(asyncio.run(main())))
""")
    assert out["on"] == out["off"]
    assert json.dumps(out["on"]).count("raised") == 1

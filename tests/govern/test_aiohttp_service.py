"""A plain aiohttp service governed by `instpy build --govern`, served by web.run_app on loopback:
the server inbound (route templates are canonical paths) and the client outbound (a dependency
called with ClientSession); plus the governed client's fallback answer used every usual way.
"""

from __future__ import annotations

import concurrent.futures
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import REJECTED, REPO, Dependency, build_tree, probe, until, write_rules
from web_support import (
    Server,
    breaker_opens_on_failures,
    client_breaker_opens_on_connection_errors,
    concurrency_limit_holds,
    query_hot_parameter_holds,
    start,
)

pytest_plugins = ["fixture_support"]  # key, dependency, dead_url

SERVICE = REPO / "fixtures" / "aiohttp_shop"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build_tree(SERVICE, tmp_path_factory.mktemp("aiohttp") / "governed", key)


@pytest.fixture(scope="module")
def svc(tree: Path, key: str, dependency: Dependency, dead_url: str,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start([sys.executable, "app.py"], tree, key, tmp_path_factory.mktemp("svc"),
                     dependency, "/users/0", {"DEAD_URL": dead_url})


def test_the_build_governs_server_and_client(tree: Path) -> None:
    manifest = json.loads((tree / "instpy-manifest.json").read_text())
    assert {t["fingerprint"] for t in manifest["targets"]} == {
        "aiohttp.web_app:Application._handle",
        "aiohttp.web_urldispatcher:UrlDispatcher.resolve",
        "aiohttp.client:ClientSession._request",
    }


# -- server inbound -------------------------------------------------------------------------


def test_qps_rule_answers_with_the_configured_fallback_while_others_pass(svc: Server) -> None:
    svc.rules(
        'rules:\n  - resource: "GET /greet"\n    flow: {qps: 1}\n'
        '    fallback: {status: 429, body: "greet is resting", headers: {Retry-After: "1"}}\n'
    )
    replies = [svc.get("/greet") for _ in range(5)]
    passed = [r for r in replies if r.status == 200]
    blocked = [r for r in replies if r.status == 429]
    assert 1 <= len(passed) <= 2 and len(passed) + len(blocked) == 5
    assert all(r.body == "hello from greet" for r in passed)
    assert all(r.body == "greet is resting" for r in blocked)
    assert blocked[0].headers["Retry-After"] == "1"
    assert blocked[0].headers["Content-Type"].startswith("text/plain")
    assert all(svc.get("/users/5").status == 200 for _ in range(5))


def test_metrics_under_the_canonical_path_and_404_is_not_governed(svc: Server) -> None:
    svc.rules("rules: []\n")
    assert json.loads(svc.get("/users/7").body) == {"id": 7}
    assert svc.get("/nope").status == 404
    text = svc.metrics()
    assert 'instpy_requests_passed_total{resource="GET /users/{id}"}' in text
    assert "/nope" not in text and "/users/7" not in text


def test_concurrency_limit_holds_and_the_handler_never_runs_for_blocked(svc: Server) -> None:
    concurrency_limit_holds(svc, "GET", "/slow")


def test_throttled_requests_wait_without_blocking_the_loop(svc: Server) -> None:
    svc.rules(
        'rules:\n  - resource: "GET /search"\n'
        "    flow: {qps: 2, behavior: throttling, max_queueing: 2s}\n"
    )
    # three queued requests wait in turn on the loop while another endpoint answers at once
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        queued = [pool.submit(svc.get, "/search?uid=q") for _ in range(3)]
        time.sleep(0.1)
        started = time.monotonic()
        assert svc.get("/users/1").status == 200
        assert time.monotonic() - started < 0.3
        assert all(f.result().status == 200 for f in queued)


def test_hot_parameter_from_query_and_from_the_path(svc: Server) -> None:
    svc.rules(
        'rules:\n  - resource: "GET /search"\n'
        '    hot_param: {from: query, name: uid, qps: 2, burst: 0, items: {"vip-1": 100}}\n'
        '  - resource: "GET /users/{id}"\n'
        '    hot_param: {from: path, name: id, qps: 100, items: {"13": 0}}\n'
    )
    query_hot_parameter_holds(svc, "/search")
    assert svc.get("/users/13").status == 429 and svc.get("/users/12").status == 200


def test_breaker_opens_on_5xx_and_answers_with_its_fallback(svc: Server) -> None:
    breaker_opens_on_failures(svc, "GET /flaky", "/flaky")


def test_a_rule_edit_takes_effect_within_a_second(svc: Server) -> None:
    svc.rules("rules: []\n")
    assert all(svc.get("/users/1").status == 200 for _ in range(3))
    write_rules(svc.governance, 'rules:\n  - resource: "GET /users/{id}"\n    flow: {qps: 0}\n')
    took = until(lambda: svc.get("/users/1").status == 429, timeout=3.0)
    assert took < 1.0, f"rule took {took:.2f}s to take effect"
    svc.rules('rules:\n  - resource: "GET /users/{id}"\n    flow: {qps: -1}\n', REJECTED)
    assert svc.get("/users/1").status == 429


# -- client outbound ------------------------------------------------------------------------


def test_client_calls_count_once_and_degrade_skips_the_dependency(svc: Server) -> None:
    resource = f"GET http://127.0.0.1:{svc.dependency.port}/dep"
    svc.rules("rules: []\nmetrics: {all_resources: true}\n")
    hits = svc.dependency.hits
    before = svc.metric("instpy_requests_passed_total", resource) or 0
    assert all(svc.get("/dependency").body == "dependency says hi" for _ in range(3))
    assert svc.dependency.hits == hits + 3
    assert svc.metric("instpy_requests_passed_total", resource) == before + 3
    svc.rules(f'rules:\n  - resource: "{resource}"\n'
              '    degrade: {status: 503, body: "dependency cut off"}\n')
    replies = [svc.get("/dependency") for _ in range(3)]
    assert all(r.status == 503 and r.body == "dependency cut off" for r in replies)
    assert svc.dependency.hits == hits + 3


def test_client_breaker_opens_on_connection_errors(svc: Server, dead_url: str) -> None:
    client_breaker_opens_on_connection_errors(svc, dead_url, "/dead")


PROBE = """
import asyncio, json, os
import aiohttp

URL = f"http://127.0.0.1:{os.environ['DEP_PORT']}/dep"

async def main():
    out = {}
    async with aiohttp.ClientSession() as s:
        async with s.get(URL, params={"q": "1"}) as r:
            out["ctx"] = [r.status, r.reason, r.ok, r.content_type, await r.text(),
                          await r.json(), r.headers["Retry-After"], str(r.url), r.method]
        r = await s.get(URL)
        out["awaited"] = [await r.read(), r.closed]
        r.release()
        async with s.request("GET", URL) as r:
            out["stream"] = (await r.content.read()).decode()
        async with s.get(URL) as r:
            try:
                r.raise_for_status()
            except aiohttp.ClientResponseError as e:
                out["raised"] = e.status
    async with aiohttp.ClientSession(raise_for_status=True) as s:
        try:
            async with s.get(URL):
                out["strict"] = "not raised"
        except aiohttp.ClientResponseError as e:
            out["strict"] = e.status
    async with aiohttp.ClientSession(base_url=URL.rsplit("/", 1)[0]) as s:
        async with s.get("/dep") as r:
            out["base_url"] = r.status
    out["awaited"][0] = out["awaited"][0].decode()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_the_fallback_is_a_response_used_the_usual_ways(tree: Path, key: str,
                                                        dependency: Dependency,
                                                        tmp_path: Path) -> None:
    governance = tmp_path / "governance.yaml"
    governance.write_text(
        f'rules:\n  - resource: "GET http://127.0.0.1:{dependency.port}/dep"\n'
        "    degrade: {status: 503, body: '{\"down\": true}', content_type: application/json, "
        'headers: {Retry-After: "2"}}\n'
    )
    hits = dependency.hits
    out, stderr = probe(PROBE, tree, key, governance, "-W", "error::ResourceWarning",
                        DEP_PORT=str(dependency.port))
    url = f"http://127.0.0.1:{dependency.port}/dep"
    assert out["ctx"] == [503, "Service Unavailable", False, "application/json",
                          '{"down": true}', {"down": True}, "2", url + "?q=1", "GET"]
    assert out["awaited"] == ['{"down": true}', True]  # closed once read, as a real one
    assert out["stream"] == '{"down": true}'
    assert out["raised"] == 503 and out["strict"] == 503 and out["base_url"] == 503
    assert dependency.hits == hits
    assert "hook_failure" not in stderr and "Traceback" not in stderr

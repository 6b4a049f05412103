"""A plain FastAPI service governed by `instpy build --govern`, served by uvicorn, driven for real.

One build of fixtures/fastapi_shop (no governance code in it), one uvicorn server, one local
dependency server counting the calls it gets; each test writes the governance.yaml it needs and
waits for it to be applied. Inbound through Starlette's routing (and FastAPI's, for an included
router), outbound through httpx's `Client.send` and `AsyncClient.send`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from asgi_support import uvicorn
from service_support import REPO, build_tree, until, write_rules
from web_support import (
    BREAKER_COUNT,
    Server,
    breaker_opens_on_failures,
    concurrency_limit_holds,
    query_hot_parameter_holds,
)

pytest_plugins = ["fixture_support"]  # key, dependency, dead_url

SERVICE = REPO / "fixtures" / "fastapi_shop"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build_tree(SERVICE, tmp_path_factory.mktemp("fastapi") / "tree", key)


@pytest.fixture(scope="module")
def app(tree: Path, key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from uvicorn(tree, key, tmp_path_factory.mktemp("serve"), "/greet2a")


def _metric(text: str, name: str, resource: str) -> float:
    prefix = f'{name}{{resource="{resource}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return 0.0


# -- the build ------------------------------------------------------------------------------


def test_the_build_governs_routing_and_both_httpx_clients(tree: Path) -> None:
    manifest = json.loads((tree / "instpy-manifest.json").read_text())
    fingerprints = {t["fingerprint"] for t in manifest["targets"]}
    assert {
        "starlette.routing:Route.handle",
        "starlette.routing:Mount.handle",
        "httpx._client:Client.send",
        "httpx._client:AsyncClient.send",
    } <= fingerprints
    endpoints = {(e["method"], e["path"]) for e in manifest["endpoints"]["endpoints"]}
    assert ("GET", "/users/{user_id}") in endpoints
    assert ("GET", "/catalog/items/{item_id}") in endpoints


# -- inbound ----------------------------------------------------------------------------------


def test_every_endpoint_has_metrics_under_its_route_template(app: Server) -> None:
    assert json.loads(app.get("/users/7").body) == {"id": 7}
    assert json.loads(app.get("/catalog/items/pen").body) == {"item": "pen"}
    app.get("/greet2a")
    text = app.metrics()
    for resource in ("GET /users/{user_id}", "GET /catalog/items/{item_id}", "GET /greet2a"):
        assert f'instpy_requests_passed_total{{resource="{resource}"}}' in text, resource


def test_qps_rule_answers_with_the_configured_fallback_while_others_pass(app: Server) -> None:
    app.rules(
        'rules:\n  - resource: "GET /greet1a"\n    flow: {qps: 1}\n'
        '    fallback: {status: 429, body: "too many requests to /greet1a", '
        "content_type: text/plain}\n"
    )
    replies = [app.get("/greet1a") for _ in range(5)]
    blocked = [r for r in replies if r.status == 429]
    assert 1 <= sum(r.status == 200 for r in replies) <= 2 and len(blocked) >= 3
    assert all(r.body == "too many requests to /greet1a" for r in blocked)
    assert {k.lower(): v for k, v in blocked[0].headers.items()}["content-type"] == "text/plain"
    assert all(app.get("/greet2a").status == 200 for _ in range(5))


def test_included_router_and_sync_endpoint_are_blocked(app: Server) -> None:
    app.rules(
        'rules:\n  - resource: "GET /catalog/items/{item_id}"\n    flow: {qps: 0}\n'
        '  - resource: "GET /greet2a"\n    flow: {qps: 0}\n'
    )
    assert app.get("/catalog/items/pen").status == 429
    assert app.get("/greet2a").status == 429
    assert app.get("/users/1").status == 200


def test_concurrency_limit_holds_and_the_endpoint_never_runs_for_blocked(app: Server) -> None:
    concurrency_limit_holds(app, "POST", "/slow")


def test_hot_parameter_limits_each_query_value_with_exceptions(app: Server) -> None:
    app.rules(
        'rules:\n  - resource: "GET /search"\n'
        '    hot_param: {from: query, name: uid, qps: 2, burst: 0, items: {"vip-1": 100}}\n'
    )
    query_hot_parameter_holds(app, "/search")
    assert app.get("/search?uid=u2").status == 200


def test_breaker_opens_on_5xx_and_answers_with_its_fallback(app: Server) -> None:
    breaker_opens_on_failures(app, "GET /flaky", "/flaky")


def test_exceptions_are_errors_and_http_4xx_are_not(app: Server) -> None:
    app.rules("rules: []\n")
    before = app.metrics()
    assert app.get("/boom").status == 500
    assert app.get("/users/404").status == 404
    after = app.metrics()
    errors = "instpy_requests_errors_total"
    assert _metric(after, errors, "GET /boom") == _metric(before, errors, "GET /boom") + 1
    assert _metric(after, errors, "GET /users/{user_id}") == _metric(
        before, errors, "GET /users/{user_id}")


def test_a_rule_edit_takes_effect_within_a_second(app: Server) -> None:
    app.rules("rules: []\n")
    assert all(app.get("/users/1").status == 200 for _ in range(3))
    write_rules(app.governance, 'rules:\n  - resource: "GET /users/{user_id}"\n'
                "    flow: {qps: 0}\n")
    took = until(lambda: app.get("/users/1").status == 429, timeout=3.0)
    assert took < 1.0, f"rule took {took:.2f}s to take effect"


# -- outbound (httpx) -------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["async", "sync"])
def test_outbound_degrade_answers_without_calling_the_dependency(app: Server,
                                                                 client: str) -> None:
    dep = app.dependency
    app.rules("rules: []\n")
    hits = dep.paths.get("/dep", 0)
    assert app.get(f"/dependency/{client}").body == "dependency says hi"
    assert dep.paths["/dep"] == hits + 1
    app.rules(
        f'rules:\n  - resource: "GET {dep.base}/dep"\n'
        '    degrade: true\n    fallback: {status: 503, body: "dependency cut off"}\n'
    )
    replies = [app.get(f"/dependency/{client}") for _ in range(3)]
    assert all(r.status == 503 and r.body == "dependency cut off" for r in replies)
    assert dep.paths["/dep"] == hits + 1
    assert f'instpy_requests_blocked_total{{resource="GET {dep.base}/dep",family="degrade"}}' \
        in app.metrics()


@pytest.mark.parametrize("client", ["async", "sync"])
def test_outbound_breaker_stops_calling_a_failing_dependency(app: Server, client: str) -> None:
    dep = app.dependency
    app.rules(
        f'rules:\n  - resource: "GET {dep.base}/broken-{client}"\n' + BREAKER_COUNT
        + '    fallback: {status: 503, body: "dependency is resting"}\n'
    )
    replies = [app.get(f"/dependency/{client}?path=broken-{client}") for _ in range(6)]
    assert [r.body for r in replies[:3]] == ["dependency is broken"] * 3
    assert all(r.status == 503 and r.body == "dependency is resting" for r in replies[3:])
    assert dep.paths[f"/broken-{client}"] == 3

"""A plain Starlette app governed by `instpy build --govern`, served by uvicorn, driven for real.

One build of fixtures/starlette_app (no governance code in it), one uvicorn server; each test
writes the governance.yaml it needs and waits for it to be applied. Covers what FastAPI's module
does not: function and class endpoints of plain Starlette, sync endpoints in the thread pool,
nested mounts with path parameters in the mount's template.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from asgi_support import uvicorn
from service_support import REPO, build_tree, until, write_rules
from web_support import Server

pytest_plugins = ["fixture_support"]  # key, dependency, dead_url

SERVICE = REPO / "fixtures" / "starlette_app"
ITEM = "GET /orgs/{org}/v1/items/{item_id}"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build_tree(SERVICE, tmp_path_factory.mktemp("starlette") / "tree", key)


@pytest.fixture(scope="module")
def app(tree: Path, key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from uvicorn(tree, key, tmp_path_factory.mktemp("serve"), "/articles")


def test_the_build_governs_route_and_mount_handling(tree: Path) -> None:
    manifest = json.loads((tree / "instpy-manifest.json").read_text())
    fingerprints = {t["fingerprint"] for t in manifest["targets"]}
    assert fingerprints == {"starlette.routing:Route.handle", "starlette.routing:Mount.handle"}


def test_every_endpoint_has_metrics_under_its_full_template(app: Server) -> None:
    assert app.get("/hello").body == "hello"
    assert json.loads(app.get("/users/7").body) == {"id": 7}
    assert json.loads(app.get("/orgs/acme/v1/items/pen").body) == {"org": "acme", "item": "pen"}
    assert app.get("/articles").status == 200
    assert app.post("/articles").status == 201
    text = app.metrics()
    for resource in ("GET /hello", "GET /users/{user_id:int}", ITEM, "GET /articles",
                     "POST /articles"):
        assert f'instpy_requests_passed_total{{resource="{resource}"}}' in text, resource


def test_routing_failures_are_not_governed(app: Server) -> None:
    app.rules('rules:\n  - resource: "GET /hello"\n    flow: {qps: 0}\n')
    assert app.get("/nowhere").status == 404
    assert app.post("/hello").status == 405
    assert app.get("/users/not-a-number").status == 404
    text = app.metrics()
    assert "/nowhere" not in text and 'resource="POST /hello"' not in text


def test_qps_rule_answers_with_the_fallback_while_others_pass(app: Server) -> None:
    app.rules(
        'rules:\n  - resource: "GET /hello"\n    flow: {qps: 1}\n'
        '    fallback: {status: 503, body: "{\\"error\\": \\"busy\\"}", '
        'content_type: application/json, headers: {Retry-After: "2"}}\n'
    )
    time.sleep(1.1)  # let the one-second window forget the earlier tests' calls to /hello
    replies = [app.get("/hello") for _ in range(5)]
    blocked = [r for r in replies if r.status == 503]
    assert 1 <= sum(r.status == 200 for r in replies) <= 2 and len(blocked) >= 3, replies
    assert json.loads(blocked[0].body) == {"error": "busy"}
    headers = {k.lower(): v for k, v in blocked[0].headers.items()}
    assert headers["content-type"] == "application/json" and headers["retry-after"] == "2"
    assert all(app.get("/users/1").status == 200 for _ in range(5))


def test_sync_and_class_endpoints_are_blocked_without_running(app: Server) -> None:
    app.rules(
        'rules:\n  - resource: "GET /users/{user_id:int}"\n    flow: {qps: 0}\n'
        '  - resource: "POST /articles"\n    flow: {qps: 0}\n'
    )
    assert app.get("/users/3").status == 429
    assert app.post("/articles").status == 429
    assert app.get("/articles").status == 200


def test_hot_parameter_from_a_mount_template(app: Server) -> None:
    app.rules(
        f'rules:\n  - resource: "{ITEM}"\n'
        '    hot_param: {from: path, name: org, qps: 2, items: {"vip": 100}}\n'
    )
    plain = [app.get("/orgs/acme/v1/items/pen").status for _ in range(6)]
    assert plain.count(200) <= 3 and plain.count(429) >= 3
    assert all(app.get("/orgs/vip/v1/items/pen").status == 200 for _ in range(6))
    assert app.get("/orgs/other/v1/items/pen").status == 200


def test_a_rule_edit_takes_effect_within_a_second(app: Server) -> None:
    app.rules("rules: []\n")
    assert app.get("/orgs/a/v1/items/b").status == 200
    write_rules(app.governance, f'rules:\n  - resource: "{ITEM}"\n    flow: {{qps: 0}}\n')
    took = until(lambda: app.get("/orgs/a/v1/items/b").status == 429, timeout=3.0)
    assert took < 1.0, f"rule took {took:.2f}s to take effect"

"""A plain Django service governed by `instpy build --govern`, served for real and driven for real.

One build of fixtures/django_shop (no governance code in it); served twice from it: by uvicorn
(ASGI: every view goes through `BaseHandler._get_response_async`) and by gunicorn (WSGI: every
view goes through `BaseHandler._get_response`). Each has a sync and an async view under test.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import REJECTED, REPO, Dependency, build_tree, until, write_rules
from web_support import (
    Server,
    breaker_opens_on_failures,
    concurrency_limit_holds,
    query_hot_parameter_holds,
    start,
)

pytest_plugins = ["fixture_support"]  # key, dependency, dead_url

SERVICE = REPO / "fixtures" / "django_shop"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build_tree(SERVICE, tmp_path_factory.mktemp("django") / "governed", key)


@pytest.fixture(scope="module")
def asgi(tree: Path, key: str, dependency: Dependency,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}",
           "--lifespan", "off", "--no-access-log", "shop_site.asgi:application"]
    yield from start(cmd, tree, key, tmp_path_factory.mktemp("asgi"), dependency, "/users/0/")


@pytest.fixture(scope="module")
def wsgi(tree: Path, key: str, dependency: Dependency,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cmd = [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "6", "-b",
           "127.0.0.1:{port}", "shop_site.wsgi:application"]
    yield from start(cmd, tree, key, tmp_path_factory.mktemp("wsgi"), dependency, "/users/0/")


def test_the_build_governs_both_get_response_paths(tree: Path) -> None:
    manifest = json.loads((tree / "instpy-manifest.json").read_text())
    fingerprints = {t["fingerprint"] for t in manifest["targets"]}
    assert {
        "django.core.handlers.base:BaseHandler._get_response",
        "django.core.handlers.base:BaseHandler._get_response_async",
        "django.core.handlers.base:BaseHandler.resolve_request",
        "urllib3.connectionpool:HTTPConnectionPool.urlopen",
    } <= fingerprints
    assert not any(f.startswith("shop") for f in fingerprints)


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_qps_fallback_on_an_async_and_a_sync_view_while_others_pass(
        server: str, request: pytest.FixtureRequest) -> None:
    svc: Server = request.getfixturevalue(server)
    svc.rules(
        'rules:\n  - resource: "GET /agreet/"\n    flow: {qps: 1}\n'
        '    fallback: {status: 429, body: "async view resting", content_type: text/plain}\n'
        '  - resource: "GET /greet/"\n    flow: {qps: 1}\n'
        '    fallback: {status: 503, body: "sync view resting", headers: {Retry-After: "1"}}\n'
    )
    for path, status, body, view in [("/agreet/", 429, "async view resting", "an async view"),
                                     ("/greet/", 503, "sync view resting", "a sync view")]:
        replies = [svc.get(path) for _ in range(4)]
        passed = [r for r in replies if r.status == 200]
        blocked = [r for r in replies if r.status == status]
        assert 1 <= len(passed) <= 2 and len(passed) + len(blocked) == 4, replies
        assert all(r.body == f"hello from {view}" for r in passed)
        assert all(r.body == body for r in blocked)
        assert blocked[0].headers["Content-Type"].startswith("text/plain")
    assert blocked[0].headers["Retry-After"] == "1"
    # response middleware still runs on a fallback (SecurityMiddleware's header)
    assert blocked[0].headers["X-Content-Type-Options"] == "nosniff"
    assert all(svc.get("/users/3/").status == 200 for _ in range(5))


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_metrics_under_the_route_template_and_404_is_not_governed(
        server: str, request: pytest.FixtureRequest) -> None:
    svc: Server = request.getfixturevalue(server)
    svc.rules("rules: []\n")
    assert svc.get("/users/7/").body == '{"id": 7}'
    assert svc.get("/agreet/").status == 200 and svc.get("/nope/").status == 404
    text = svc.metrics()
    assert 'instpy_requests_passed_total{resource="GET /users/<int:user_id>/"}' in text
    assert 'instpy_requests_passed_total{resource="GET /agreet/"}' in text
    assert "/nope" not in text and "/users/7" not in text


@pytest.mark.parametrize(("server", "path"), [("asgi", "/aslow/"), ("wsgi", "/slow/")])
def test_concurrency_limit_holds_and_the_view_never_runs_for_blocked(
        server: str, path: str, request: pytest.FixtureRequest) -> None:
    svc: Server = request.getfixturevalue(server)
    concurrency_limit_holds(svc, "GET", path)


def test_hot_parameter_from_query_and_from_the_path(wsgi: Server) -> None:
    wsgi.rules(
        'rules:\n  - resource: "GET /search/"\n'
        '    hot_param: {from: query, name: uid, qps: 2, burst: 0, items: {"vip-1": 100}}\n'
        '  - resource: "GET /users/<int:user_id>/"\n'
        '    hot_param: {from: path, name: user_id, qps: 100, items: {"13": 0}}\n'
    )
    query_hot_parameter_holds(wsgi, "/search/")
    assert wsgi.get("/search/?uid=u2").status == 200
    assert wsgi.get("/users/13/").status == 429 and wsgi.get("/users/12/").status == 200


def test_breaker_opens_on_5xx_and_answers_with_its_fallback(asgi: Server) -> None:
    breaker_opens_on_failures(asgi, "GET /flaky/", "/flaky/")


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_a_rule_edit_takes_effect_within_a_second(server: str,
                                                  request: pytest.FixtureRequest) -> None:
    svc: Server = request.getfixturevalue(server)
    svc.rules("rules: []\n")
    assert all(svc.get("/agreet/").status == 200 for _ in range(3))
    write_rules(svc.governance, 'rules:\n  - resource: "GET /agreet/"\n    flow: {qps: 0}\n')
    took = until(lambda: svc.get("/agreet/").status == 429, timeout=3.0)
    assert took < 1.0, f"rule took {took:.2f}s to take effect"
    svc.rules('rules:\n  - resource: "GET /agreet/"\n    flow: {qps: -1}\n', REJECTED)
    assert svc.get("/agreet/").status == 429

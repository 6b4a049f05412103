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
from service_support import REPO, Dependency, mint_key, until, write_rules
from web_support import REJECTED, Server, build, start

SERVICE = REPO / "fixtures" / "django_shop"


@pytest.fixture(scope="module")
def key() -> str:
    return mint_key("shop")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build(SERVICE, tmp_path_factory.mktemp("django") / "governed", key)


@pytest.fixture(scope="module")
def dependency() -> Iterator[Dependency]:
    with Dependency() as dep:
        yield dep


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
    svc.rules(f'rules:\n  - resource: "GET {path}"\n    concurrency: {{max: 2}}\n')
    replies = svc.burst(f"{path}?ms=600", 6)
    passed = [r for r in replies if r.status == 200]
    assert 1 <= len(passed) <= 2
    assert sum(r.status == 429 for r in replies) == 6 - len(passed)
    assert max(json.loads(r.body)["peak"] for r in passed) <= 2


def test_hot_parameter_from_query_and_from_the_path(wsgi: Server) -> None:
    wsgi.rules(
        'rules:\n  - resource: "GET /search/"\n'
        '    hot_param: {from: query, name: uid, qps: 2, burst: 0, items: {"vip-1": 100}}\n'
        '  - resource: "GET /users/<int:user_id>/"\n'
        '    hot_param: {from: path, name: user_id, qps: 100, items: {"13": 0}}\n'
    )
    plain = [wsgi.get("/search/?uid=u1").status for _ in range(8)]
    assert plain.count(200) <= 3 and plain.count(429) >= 5
    assert all(wsgi.get("/search/?uid=vip-1").status == 200 for _ in range(8))
    assert wsgi.get("/search/?uid=u2").status == 200
    assert wsgi.get("/users/13/").status == 429 and wsgi.get("/users/12/").status == 200


def test_breaker_opens_on_5xx_and_answers_with_its_fallback(asgi: Server) -> None:
    asgi.rules(
        'rules:\n  - resource: "GET /flaky/"\n'
        "    circuit_breaker: {strategy: error_ratio, threshold: 0.5, min_requests: 4, "
        "window: 10s, recovery: 30s}\n"
        '    fallback: {status: 503, body: "flaky is switched off"}\n'
    )
    replies = [asgi.get("/flaky/") for _ in range(8)]
    assert [r.body for r in replies[:4]] == ["broken"] * 4
    assert replies[-1].status == 503 and replies[-1].body == "flaky is switched off"
    assert asgi.metric("instpy_circuit_breaker_state", "GET /flaky/") == 1


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

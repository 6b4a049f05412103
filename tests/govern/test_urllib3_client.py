"""urllib3 outbound governance in a governed build of fixtures/django_shop (plain Django views
calling a dependency with urllib3, and with requests over urllib3), served by gunicorn; plus the
governed urllib3 used directly in a process of its own (pools, response fidelity).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import REPO, Dependency, build_tree, probe
from web_support import Server, client_breaker_opens_on_connection_errors, start

pytest_plugins = ["fixture_support"]  # key, dependency, dead_url

SERVICE = REPO / "fixtures" / "django_shop"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build_tree(SERVICE, tmp_path_factory.mktemp("urllib3") / "governed", key)


@pytest.fixture(scope="module")
def svc(tree: Path, key: str, dependency: Dependency, dead_url: str,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cmd = [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "4", "-b",
           "127.0.0.1:{port}", "shop_site.wsgi:application"]
    yield from start(cmd, tree, key, tmp_path_factory.mktemp("svc"), dependency, "/users/0/",
                     {"DEAD_URL": dead_url})


def dep_resource(svc: Server) -> str:
    return f"GET http://127.0.0.1:{svc.dependency.port}/dep"


ALL = "metrics: {all_resources: true}\n"


@pytest.mark.parametrize("path", ["/dependency/", "/dependency-requests/"])
def test_each_call_counts_once_with_urllib3_and_with_requests_over_it(
        svc: Server, path: str) -> None:
    svc.rules("rules: []\n" + ALL)
    before = svc.metric("instpy_requests_passed_total", dep_resource(svc)) or 0
    hits = svc.dependency.hits
    for _ in range(3):
        reply = svc.get(path)
        assert reply.status == 200 and reply.body == "dependency says hi"
    assert svc.dependency.hits == hits + 3
    # requests marks the call; urllib3 underneath must not count it a second time
    assert svc.metric("instpy_requests_passed_total", dep_resource(svc)) == before + 3
    assert svc.metric("instpy_requests_completed_total", dep_resource(svc)) == before + 3


def test_degrade_answers_without_calling_the_dependency(svc: Server) -> None:
    svc.rules(
        f'rules:\n  - resource: "{dep_resource(svc)}"\n'
        '    degrade: {status: 503, body: "dependency cut off"}\n'
    )
    hits = svc.dependency.hits
    replies = [svc.get("/dependency/") for _ in range(3)]
    assert all(r.status == 503 and r.body == "dependency cut off" for r in replies)
    assert svc.dependency.hits == hits


def test_breaker_opens_on_connection_errors_and_answers_with_its_fallback(
        svc: Server, dead_url: str) -> None:
    client_breaker_opens_on_connection_errors(svc, dead_url, "/dead/")


PROBE = """
import json, os, urllib3
from instpy.runtime.governance import engine
port = os.environ["DEP_PORT"]
url = f"http://127.0.0.1:{port}/dep"
pool = urllib3.HTTPConnectionPool("127.0.0.1", int(port))
r = pool.request("GET", "/dep?x=1")
out = {"direct": [r.status, r.data.decode()]}
r = urllib3.PoolManager().request("GET", url + "?x=2", preload_content=False)
out["streamed"] = [r.status, r.headers["Content-Type"], b"".join(r.stream(4)).decode()]
out["streamed"].append(urllib3.request("GET", url).json())
r = urllib3.request("GET", url)
out["data"] = [r.status, r.data.decode(), r.headers["Content-Length"], r.reason, r.url]
print(json.dumps(out))
"""


def test_pools_used_directly_and_the_fallback_response_read_as_usual(
        tree: Path, key: str, dependency: Dependency, tmp_path: Path) -> None:
    governance = tmp_path / "governance.yaml"
    governance.write_text(
        f'rules:\n  - resource: "GET http://127.0.0.1:{dependency.port}/dep"\n'
        '    degrade: {status: 503, body: \'{"down": true}\', content_type: application/json}\n'
    )
    hits = dependency.hits
    out, _ = probe(PROBE, tree, key, governance, DEP_PORT=str(dependency.port))
    assert out["direct"] == [503, '{"down": true}']
    assert out["streamed"] == [503, "application/json", '{"down": true}', {"down": True}]
    assert out["data"] == [503, '{"down": true}', "14", "Service Unavailable",
                           f"http://127.0.0.1:{dependency.port}/dep"]
    assert dependency.hits == hits

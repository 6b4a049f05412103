"""urllib3 outbound governance in a governed build of fixtures/django_shop (plain Django views
calling a dependency with urllib3, and with requests over urllib3), served by gunicorn; plus the
governed urllib3 used directly in a process of its own (pools, response fidelity).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import REPO, Dependency, free_port, mint_key
from web_support import Server, build, start

SERVICE = REPO / "fixtures" / "django_shop"


@pytest.fixture(scope="module")
def key() -> str:
    return mint_key("shop")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build(SERVICE, tmp_path_factory.mktemp("urllib3") / "governed", key)


@pytest.fixture(scope="module")
def dependency() -> Iterator[Dependency]:
    with Dependency() as dep:
        yield dep


@pytest.fixture(scope="module")
def dead_url() -> str:
    """Where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/down"


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
    resource = "GET " + dead_url
    svc.rules(
        f'rules:\n  - resource: "{resource}"\n'
        "    circuit_breaker: {strategy: error_count, threshold: 3, min_requests: 3, "
        "window: 10s, recovery: 30s}\n"
        '    fallback: {status: 503, body: "breaker open"}\n'
    )
    replies = [svc.get("/dead/") for _ in range(5)]
    assert [r.body for r in replies[:3]] == ["dependency down"] * 3
    assert replies[-1].status == 503 and replies[-1].body == "breaker open"
    assert svc.metric("instpy_circuit_breaker_state", resource) == 1


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
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tree, capture_output=True, text=True, check=False,
        env={"PYTHONPATH": str(tree), "INSTPY_GOVERNANCE": str(governance),
             "INSTPY_LICENSE_KEY": key, "DEP_PORT": str(dependency.port)},
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["direct"] == [503, '{"down": true}']
    assert out["streamed"] == [503, "application/json", '{"down": true}', {"down": True}]
    assert out["data"] == [503, '{"down": true}', "14", "Service Unavailable",
                           f"http://127.0.0.1:{dependency.port}/dep"]
    assert dependency.hits == hits

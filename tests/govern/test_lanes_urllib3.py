"""Full-link gray release through urllib3, in a governed build of fixtures/django_shop (served by
gunicorn) whose `/dependency/` calls `http://service-x/who` with a urllib3 PoolManager (and
`/dependency-requests/` with requests over urllib3): untagged requests reach base only, tagged
ones the lane's instance, and base when the lane has none there or its instance refuses the
connection (retried on base, counted as a fallback). Plus pools used directly, in a process of
their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lanes_support import (
    FALLBACK,
    MATCHING,
    ROUTED,
    SERVICE,
    TAGGED,
    Instance,
    closed_address,
    counter,
    lanes,
)
from service_support import REPO, Dependency, mint_key
from web_support import Server, build, start

FIXTURE = REPO / "fixtures" / "django_shop"
RESOURCE = f"GET http://{SERVICE}/who"
ALL = "metrics: {all_resources: true}\n"


@pytest.fixture(scope="module")
def key() -> str:
    return mint_key("shop")


@pytest.fixture(scope="module")
def base() -> Iterator[Instance]:
    with Instance("base") as instance:
        yield instance


@pytest.fixture(scope="module")
def gray() -> Iterator[Instance]:
    with Instance("gray") as instance:
        yield instance


@pytest.fixture(scope="module")
def tree(key: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(FIXTURE, tmp_path_factory.mktemp("lanes-urllib3") / "governed", key)


@pytest.fixture(scope="module")
def svc(tree: Path, key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cmd = [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "4", "-b",
           "127.0.0.1:{port}", "shop_site.wsgi:application"]
    with Dependency() as unused:
        yield from start(cmd, tree, key, tmp_path_factory.mktemp("svc"), unused, "/users/0/",
                         {"DEPENDENCY_URL": f"http://{SERVICE}/who"})


def answers(svc: Server, n: int, headers: dict[str, str] | None = None,
            path: str = "/dependency/") -> list[tuple[int, str]]:
    return [(r.status, r.body) for r in (svc.get(path, headers) for _ in range(n))]


def test_untagged_requests_only_reach_base(svc: Server, base: Instance, gray: Instance) -> None:
    svc.rules(lanes(base.address, gray.address, ALL))
    hits = gray.hits
    assert answers(svc, 3) == [(200, "base")] * 3
    assert answers(svc, 2, {"x-user": "8"}) == [(200, "base")] * 2  # matches no lane
    assert gray.hits == hits
    assert base.tags[-5:] == [None] * 5


@pytest.mark.parametrize("path", ["/dependency/", "/dependency-requests/"])
def test_tagged_requests_reach_the_lane_instance_and_count_once(
        svc: Server, base: Instance, gray: Instance, path: str) -> None:
    svc.rules(lanes(base.address, gray.address, ALL))
    metrics = svc.metrics()
    routed = counter(metrics, ROUTED)
    passed = svc.metric("instpy_requests_passed_total", RESOURCE) or 0
    assert answers(svc, 2, TAGGED, path) == [(200, "gray")] * 2  # tag from upstream
    assert answers(svc, 2, MATCHING, path) == [(200, "gray")] * 2  # this service matched
    assert gray.tags[-4:] == ["gray"] * 4  # the tag travels on
    assert counter(svc.metrics(), ROUTED) == routed + 4  # routed once: requests over urllib3
    assert svc.metric("instpy_requests_passed_total", RESOURCE) == passed + 4


def test_a_lane_without_an_instance_falls_back_to_base(svc: Server, base: Instance) -> None:
    svc.rules(lanes(base.address, None, ALL))
    fallback = counter(svc.metrics(), FALLBACK)
    assert answers(svc, 3, TAGGED) == [(200, "base")] * 3
    assert base.tags[-3:] == ["gray"] * 3  # a later hop can re-enter the lane
    assert counter(svc.metrics(), FALLBACK) == fallback + 3


@pytest.mark.parametrize("path", ["/dependency/", "/dependency-requests/"])
def test_a_lane_instance_that_refuses_is_retried_on_base(
        svc: Server, base: Instance, path: str) -> None:
    svc.rules(lanes(base.address, closed_address(), ALL))
    fallback = counter(svc.metrics(), FALLBACK)
    errors = svc.metric("instpy_requests_errors_total", RESOURCE) or 0
    completed = svc.metric("instpy_requests_completed_total", RESOURCE) or 0
    hits = base.hits
    assert answers(svc, 3, TAGGED, path) == [(200, "base")] * 3
    assert base.hits == hits + 3
    assert counter(svc.metrics(), FALLBACK) == fallback + 3
    # one governed call each, ending as its retry did
    assert svc.metric("instpy_requests_completed_total", RESOURCE) == completed + 3
    assert svc.metric("instpy_requests_errors_total", RESOURCE) == errors


PROBE = """
import json, urllib3
from instpy.runtime.lanes.context import set_tag
out = {}
pool = urllib3.HTTPConnectionPool("service-x", 80, headers={"x-probe": "1"}, maxsize=2)
out["untagged"] = pool.request("GET", "/who").data.decode()
set_tag("gray")
out["relative"] = pool.request("GET", "/who?x=1").data.decode()
out["absolute"] = pool.urlopen("GET", "http://service-x/who").data.decode()
out["manager"] = urllib3.PoolManager().request("GET", "http://service-x/who").data.decode()
print(json.dumps(out))
"""


def test_pools_used_directly_follow_the_lane(tree: Path, key: str, base: Instance,
                                             gray: Instance, tmp_path: Path) -> None:
    governance = tmp_path / "governance.yaml"
    for lane, expected in ((gray.address, "gray"), (None, "base"), (closed_address(), "base")):
        governance.write_text(lanes(base.address, lane))
        done = subprocess.run(
            [sys.executable, "-c", PROBE], cwd=tree, capture_output=True, text=True,
            check=False, env={"PYTHONPATH": str(tree), "INSTPY_GOVERNANCE": str(governance),
                              "INSTPY_LICENSE_KEY": key}, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out == {"untagged": "base", "relative": expected, "absolute": expected,
                       "manager": expected}

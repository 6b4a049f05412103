"""Full-link gray release through urllib3, in a governed build of fixtures/django_shop (served by
gunicorn) whose `/dependency/` calls `http://service-x/who` with a urllib3 PoolManager (and
`/dependency-requests/` with requests over urllib3): untagged requests reach base only, tagged
ones the lane's instance, and base when the lane has none there or its instance refuses the
connection (retried on base, counted as a fallback). Plus pools used directly, in a process of
their own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import lanes_support as scenarios
import pytest
from lanes_support import (
    ALL,
    SERVICE,
    Instance,
    ThroughHttp,
    closed_address,
    instance_fixtures,
    lanes,
)
from service_support import REPO, Dependency, build_tree, probe
from web_support import Server, start

pytest_plugins = ["fixture_support"]  # key, dependency, dead_url

FIXTURE = REPO / "fixtures" / "django_shop"
base, gray = instance_fixtures(Instance)


@pytest.fixture(scope="module")
def tree(key: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(FIXTURE, tmp_path_factory.mktemp("lanes-urllib3") / "governed", key)


@pytest.fixture(scope="module")
def server(tree: Path, key: str, dependency: Dependency,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cmd = [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "4", "-b",
           "127.0.0.1:{port}", "shop_site.wsgi:application"]
    yield from start(cmd, tree, key, tmp_path_factory.mktemp("svc"), dependency, "/users/0/",
                     {"DEPENDENCY_URL": f"http://{SERVICE}/who"})


def through(server: Server, path: str = "/dependency/") -> ThroughHttp:
    """`/dependency/` calls service-x with urllib3, `/dependency-requests/` with requests."""
    return ThroughHttp(server, path)


def test_untagged_requests_only_reach_base(server: Server, base: Instance,
                                           gray: Instance) -> None:
    scenarios.untagged_calls_only_reach_base(through(server), base, gray)


@pytest.mark.parametrize("path", ["/dependency/", "/dependency-requests/"])
def test_tagged_requests_reach_the_lane_instance_and_count_once(
        server: Server, base: Instance, gray: Instance, path: str) -> None:
    svc = through(server, path)
    svc.rules(lanes(base.address, gray.address, ALL))
    passed = svc.outbound("instpy_requests_passed_total") or 0
    scenarios.tagged_calls_reach_the_lane_instance(svc, gray)  # routed once: requests over urllib3
    assert svc.outbound("instpy_requests_passed_total") == passed + 4


def test_a_lane_without_an_instance_falls_back_to_base(server: Server, base: Instance) -> None:
    scenarios.a_lane_without_an_instance_falls_back_to_base(through(server), base)


@pytest.mark.parametrize("path", ["/dependency/", "/dependency-requests/"])
def test_a_lane_instance_that_refuses_is_retried_on_base(
        server: Server, base: Instance, path: str) -> None:
    scenarios.a_refusing_lane_instance_is_retried_on_base(through(server, path), base)


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
        out, _ = probe(PROBE, tree, key, governance)
        assert out == {"untagged": "base", "relative": expected, "absolute": expected,
                       "manager": expected}

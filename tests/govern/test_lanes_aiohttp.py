"""Full-link gray release through aiohttp's client, in a governed build of fixtures/aiohttp_shop
(served by web.run_app) whose `/dependency` calls `http://service-x/who` with a ClientSession:
untagged requests reach base only, tagged ones the lane's instance, and base when the lane has
none there or its instance refuses the connection (retried on base, counted as a fallback).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import lanes_support as scenarios
import pytest
from lanes_support import ALL, SERVICE, Instance, ThroughHttp, instance_fixtures, lanes
from service_support import REPO, Dependency, build_tree
from web_support import start

pytest_plugins = ["fixture_support"]  # key, dependency, dead_url

FIXTURE = REPO / "fixtures" / "aiohttp_shop"
base, gray = instance_fixtures(Instance)


@pytest.fixture(scope="module")
def svc(key: str, dependency: Dependency,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThroughHttp]:
    tree = build_tree(FIXTURE, tmp_path_factory.mktemp("lanes-aiohttp") / "governed", key)
    for server in start([sys.executable, "app.py"], tree, key, tmp_path_factory.mktemp("svc"),
                        dependency, "/users/0", {"DEPENDENCY_URL": f"http://{SERVICE}/who"}):
        yield ThroughHttp(server, "/dependency")


def test_untagged_requests_only_reach_base(svc: ThroughHttp, base: Instance,
                                           gray: Instance) -> None:
    scenarios.untagged_calls_only_reach_base(svc, base, gray)


def test_tagged_requests_reach_the_lane_instance(svc: ThroughHttp, base: Instance,
                                                 gray: Instance) -> None:
    svc.rules(lanes(base.address, gray.address, ALL))
    scenarios.tagged_calls_reach_the_lane_instance(svc, gray)
    # the resource names the service asked for, not the instance
    assert svc.outbound("instpy_requests_passed_total")


def test_a_lane_without_an_instance_falls_back_to_base(svc: ThroughHttp, base: Instance) -> None:
    scenarios.a_lane_without_an_instance_falls_back_to_base(svc, base)


def test_a_lane_instance_that_refuses_is_retried_on_base(svc: ThroughHttp,
                                                         base: Instance) -> None:
    scenarios.a_refusing_lane_instance_is_retried_on_base(svc, base)

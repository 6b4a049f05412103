"""Full-link gray release through aiohttp's client, in a governed build of fixtures/aiohttp_shop
(served by web.run_app) whose `/dependency` calls `http://service-x/who` with a ClientSession:
untagged requests reach base only, tagged ones the lane's instance, and base when the lane has
none there or its instance refuses the connection (retried on base, counted as a fallback).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

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

FIXTURE = REPO / "fixtures" / "aiohttp_shop"
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
def svc(key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tree = build(FIXTURE, tmp_path_factory.mktemp("lanes-aiohttp") / "governed", key)
    with Dependency() as unused:
        yield from start([sys.executable, "app.py"], tree, key, tmp_path_factory.mktemp("svc"),
                         unused, "/users/0", {"DEPENDENCY_URL": f"http://{SERVICE}/who"})


def answers(svc: Server, n: int, headers: dict[str, str] | None = None) -> list[tuple[int, str]]:
    return [(r.status, r.body) for r in (svc.get("/dependency", headers) for _ in range(n))]


def test_untagged_requests_only_reach_base(svc: Server, base: Instance, gray: Instance) -> None:
    svc.rules(lanes(base.address, gray.address, ALL))
    hits = gray.hits
    assert answers(svc, 3) == [(200, "base")] * 3
    assert answers(svc, 2, {"x-user": "8"}) == [(200, "base")] * 2  # matches no lane
    assert gray.hits == hits
    assert base.tags[-5:] == [None] * 5


def test_tagged_requests_reach_the_lane_instance(svc: Server, base: Instance,
                                                 gray: Instance) -> None:
    svc.rules(lanes(base.address, gray.address, ALL))
    routed = counter(svc.metrics(), ROUTED)
    assert answers(svc, 2, TAGGED) == [(200, "gray")] * 2  # tag from the upstream service
    assert answers(svc, 2, MATCHING) == [(200, "gray")] * 2  # this service matched the lane
    assert gray.tags[-4:] == ["gray"] * 4  # the tag travels on
    assert counter(svc.metrics(), ROUTED) == routed + 4
    # the resource names the service asked for, not the instance
    assert svc.metric("instpy_requests_passed_total", RESOURCE)


def test_a_lane_without_an_instance_falls_back_to_base(svc: Server, base: Instance) -> None:
    svc.rules(lanes(base.address, None, ALL))
    fallback = counter(svc.metrics(), FALLBACK)
    assert answers(svc, 3, TAGGED) == [(200, "base")] * 3
    assert base.tags[-3:] == ["gray"] * 3  # a later hop can re-enter the lane
    assert counter(svc.metrics(), FALLBACK) == fallback + 3


def test_a_lane_instance_that_refuses_is_retried_on_base(svc: Server, base: Instance) -> None:
    svc.rules(lanes(base.address, closed_address(), ALL))
    fallback = counter(svc.metrics(), FALLBACK)
    errors = svc.metric("instpy_requests_errors_total", RESOURCE) or 0
    completed = svc.metric("instpy_requests_completed_total", RESOURCE) or 0
    hits = base.hits
    assert answers(svc, 3, TAGGED) == [(200, "base")] * 3
    assert base.hits == hits + 3
    assert counter(svc.metrics(), FALLBACK) == fallback + 3
    # one governed call each, ending as its retry did
    assert svc.metric("instpy_requests_completed_total", RESOURCE) == completed + 3
    assert svc.metric("instpy_requests_errors_total", RESOURCE) == errors

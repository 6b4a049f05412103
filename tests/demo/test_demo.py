"""`make demo`'s scenario as an end-to-end test: six governed instances, lanes, a live rule."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DEMO_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "demo.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("instpy_demo", DEMO_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["instpy_demo"] = module
    spec.loader.exec_module(module)
    return module


demo_mod = _load()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    d = demo_mod.Demo(tmp_path_factory.mktemp("demo"))
    try:
        d.build()
        d.start()
        yield d
    finally:
        d.stop()


def hops(d: Any, headers: dict[str, str] | None = None) -> list[str]:
    status, body = d.call(headers)
    assert status == 200, body
    return list(demo_mod.chain_hops(body))


def test_plain_requests_take_the_base_chain(demo: Any) -> None:
    for _ in range(3):
        assert hops(demo) == ["A:base", "B:base", "C:base"]


def test_the_gray_user_takes_the_gray_lane_and_base_where_it_has_none(demo: Any) -> None:
    for _ in range(3):
        assert hops(demo, demo_mod.GRAY_USER) == ["A:gray", "B:base", "C:gray"]
    assert hops(demo, {"x-user-uuid": "987"}) == ["A:base", "B:base", "C:base"]


def test_a_qps_rule_written_while_running_answers_429(demo: Any) -> None:
    demo.apply(demo_mod.LANES + demo_mod.QPS_RULE)
    try:
        replies = [demo.call() for _ in range(4)]
        statuses = [status for status, _ in replies]
        assert statuses.count(429) >= 2
        assert all(body == "too many requests to /greet1a"
                   for status, body in replies if status == 429)
    finally:
        demo.apply(demo_mod.LANES)


def test_metrics_count_endpoints_and_lanes(demo: Any) -> None:
    by_name = {i.name: i for i in demo_mod.INSTANCES}
    gateway = demo.metrics(by_name["gateway"])
    assert 'instpy_lane_requests_total{lane="gray"}' in gateway
    b = demo.metrics(by_name["B"])
    assert 'instpy_requests_passed_total{resource="GET /greet1b"}' in b
    assert 'instpy_lane_routed_total{lane="gray",service="service-c"}' in b
    a_gray = demo.metrics(by_name["A-gray"])
    assert 'instpy_lane_fallback_total{lane="gray",service="service-b"}' in a_gray


def test_stopping_gray_c_falls_back_to_base_c_and_nothing_fails(demo: Any) -> None:
    demo.stop_instance("C-gray")
    for _ in range(3):
        assert hops(demo, demo_mod.GRAY_USER) == ["A:gray", "B:base", "C:base"]
    b = demo.metrics({i.name: i for i in demo_mod.INSTANCES}["B"])
    assert 'instpy_lane_fallback_total{lane="gray",service="service-c"}' in b

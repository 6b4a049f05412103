"""A plain gRPC service governed by `instpy build --govern`, served for real and driven for real.

One build of fixtures/grpc_shop (no governance code in it); its sync server (`grpc.server`,
driven by a sync channel) and its aio server (`grpc.aio.server`, driven by an aio channel) are
each started once; every test runs against both. The shop's Relay method calls a plain stock
service in this process through the shop's own (governed) client channel, sync or aio.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc  # type: ignore[import-untyped]
import pytest
from grpc_support import SERVICE, Shop, StockServer, serve_shop
from service_support import build_tree, until, write_rules

pytest_plugins = ["fixture_support"]  # key, dependency, dead_url

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build_tree(SERVICE, tmp_path_factory.mktemp("tree") / "governed", key)


@pytest.fixture(scope="module")
def stock() -> Iterator[StockServer]:
    with StockServer() as server:
        yield server


def stock_resource(stock: StockServer) -> str:
    return f"grpc://{stock.address}/shop.Stock/Count"


@pytest.fixture(scope="module", params=["sync", "aio"])
def shop(request: pytest.FixtureRequest, tree: Path, key: str, stock: StockServer,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    kind: str = request.param
    with serve_shop(kind, tree, key, tmp_path_factory.mktemp(kind), stock.address) as served:
        assert served.client.call("Fast", name="warm-up").ok  # the first call starts the engine
        served.ready()
        yield served


# -- the build ------------------------------------------------------------------------------


def test_manifest_lists_the_factories_and_the_grpc_endpoints(tree: Path) -> None:
    manifest = json.loads((tree / "instpy-manifest.json").read_text())
    assert {t["fingerprint"] for t in manifest["targets"]} == {
        "grpc:server", "grpc:insecure_channel", "grpc:secure_channel",
        "grpc.aio._server:server", "grpc.aio._channel:insecure_channel",
        "grpc.aio._channel:secure_channel",
    }
    endpoints = {e["path"] for e in manifest["endpoints"]["endpoints"]}
    assert {"/shop.Shop/Fast", "/shop.Shop/Watch"} <= endpoints


# -- inbound --------------------------------------------------------------------------------


def test_qps_rule_answers_resource_exhausted_with_the_fallback_body(shop: Shop) -> None:
    shop.rules('rules:\n  - resource: "/shop.Shop/Fast"\n    flow: {qps: 1}\n'
               '    fallback: {body: "too many calls to Fast"}\n')
    time.sleep(1.0)  # the one-second window forgets the fixture's warm-up call
    outcomes = [shop.client.call("Fast", name="ann") for _ in range(5)]
    passed = [o for o in outcomes if o.ok]
    assert 1 <= len(passed) <= 2 and passed[0].text == "hello ann"
    refused = [o for o in outcomes if not o.ok]
    assert refused and all(o.code == EXHAUSTED for o in refused)
    assert all(o.details == "too many calls to Fast" for o in refused)
    assert all(shop.client.call("Slow", ms=0).ok for _ in range(5))


def test_every_method_has_metrics_under_its_grpc_name(shop: Shop) -> None:
    shop.rules("rules: []\n")
    assert shop.client.call("Slow", ms=0).ok
    assert shop.client.call("Watch", count=2).texts == ("tick 0", "tick 1")
    text = shop.metrics()
    for method in ("Fast", "Slow", "Watch"):
        assert f'instpy_requests_passed_total{{resource="/shop.Shop/{method}"}}' in text


def test_concurrency_limit_holds_and_the_servicer_never_runs_for_refused(shop: Shop) -> None:
    shop.rules('rules:\n  - resource: "/shop.Shop/Slow"\n    concurrency: {max: 2}\n')
    outcomes = shop.client.burst("Slow", 6, ms=600)
    passed = [o for o in outcomes if o.ok]
    assert 1 <= len(passed) <= 2
    assert all(o.code == EXHAUSTED for o in outcomes if not o.ok)
    assert max(o.peak for o in passed) <= 2


def test_hot_parameter_from_metadata_limits_each_value(shop: Shop) -> None:
    shop.rules('rules:\n  - resource: "/shop.Shop/Fast"\n'
               '    hot_param: {from: header, name: x-user, qps: 2, burst: 0, '
               'items: {"vip-1": 100}}\n')
    plain = [shop.client.call("Fast", metadata=[("x-user", "u1")]).code for _ in range(8)]
    assert plain.count(grpc.StatusCode.OK) <= 3 and plain.count(EXHAUSTED) >= 5
    assert all(shop.client.call("Fast", metadata=[("x-user", "vip-1")]).ok for _ in range(8))
    assert shop.client.call("Fast", metadata=[("x-user", "u2")]).ok
    assert shop.client.call("Fast").ok  # no x-user: the rule does not apply


def test_breaker_opens_on_errors_and_answers_unavailable(shop: Shop) -> None:
    shop.rules('rules:\n  - resource: "/shop.Shop/Flaky"\n'
               "    circuit_breaker: {strategy: error_ratio, threshold: 0.5, min_requests: 4, "
               "window: 10s, recovery: 30s}\n"
               '    fallback: {body: "flaky is switched off"}\n')
    outcomes = [shop.client.call("Flaky") for _ in range(8)]
    assert all(o.code == grpc.StatusCode.UNKNOWN for o in outcomes[:4])
    assert outcomes[-1].code == UNAVAILABLE and outcomes[-1].details == "flaky is switched off"
    assert 'instpy_circuit_breaker_state{resource="/shop.Shop/Flaky"} 1' in shop.metrics()


def test_streaming_calls_are_governed_when_they_start(shop: Shop) -> None:
    shop.rules('rules:\n  - resource: "/shop.Shop/Watch"\n    flow: {qps: 0}\n')
    refused = shop.client.call("Watch", count=3)
    assert refused.code == EXHAUSTED and not refused.texts
    shop.rules("rules: []\n")
    assert shop.client.call("Watch", count=3).texts == ("tick 0", "tick 1", "tick 2")


def test_a_rule_edit_takes_effect_within_a_second(shop: Shop) -> None:
    shop.rules("rules: []\n")
    assert all(shop.client.call("Fast").ok for _ in range(3))
    write_rules(shop.governance, 'rules:\n  - resource: "/shop.Shop/Fast"\n    flow: {qps: 0}\n')
    took = until(lambda: shop.client.call("Fast").code == EXHAUSTED, timeout=3.0)
    assert took < 1.0, f"rule took {took:.2f}s to take effect"


# -- outbound (the shop's own channel to the stock service) --------------------------------


def test_outbound_degrade_answers_unavailable_without_calling_the_dependency(
        shop: Shop, stock: StockServer) -> None:
    shop.rules("rules: []\n")
    hits = stock.hits
    assert shop.client.call("Relay", name="pen").text == "stock has 42 for pen"
    assert stock.hits == hits + 1
    shop.rules(f'rules:\n  - resource: "{stock_resource(stock)}"\n    degrade: true\n'
               '    fallback: {body: "stock cut off"}\n')
    texts = [shop.client.call("Relay", name="pen").text for _ in range(3)]
    assert texts == ["stock failed: UNAVAILABLE: stock cut off"] * 3
    assert stock.hits == hits + 1


def test_outbound_breaker_stops_calling_a_failing_dependency(shop: Shop,
                                                           stock: StockServer) -> None:
    shop.rules(f'rules:\n  - resource: "{stock_resource(stock)}"\n'
               "    circuit_breaker: {strategy: error_count, threshold: 3, min_requests: 3, "
               "window: 10s, recovery: 30s}\n")
    stock.stock.failing = True
    try:
        hits = stock.hits
        texts = [shop.client.call("Relay", name="pen").text for _ in range(6)]
    finally:
        stock.stock.failing = False
    assert texts[:3] == ["stock failed: INTERNAL: stock database is down"] * 3
    assert all(t.startswith("stock failed: UNAVAILABLE: ") for t in texts[3:])
    assert stock.hits == hits + 3

"""Full-link gray release through gRPC, in a governed build of fixtures/grpc_shop whose Relay
calls the stock service at `service-x:50051` through its own channel (sync server with a sync
channel, aio server with an aio channel): the lane tag arrives as call metadata (or the call
matches the lane), leaves on the outbound call, and picks the instance per call — base for
untagged calls, the lane's instance for tagged ones, base when the lane has none there or its
instance refuses the connection (retried on base, counted as a fallback).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import lanes_support as scenarios
import pytest
from grpc_support import SERVICE, Shop, StockServer, serve_shop
from lanes_support import ALL, counter, instance_fixtures, lanes
from service_support import build_tree

pytest_plugins = ["fixture_support"]  # key, dependency, dead_url

RESOURCE = "grpc://service-x:50051/shop.Stock/Count"
base, gray = instance_fixtures(StockServer)


@dataclass
class ThroughGrpc:
    """The governed shop, whose Relay calls service-x."""

    shop: Shop

    def rules(self, text: str) -> object:
        return self.shop.rules(text)

    def metrics(self) -> str:
        return self.shop.metrics()

    def who(self, n: int, headers: Mapping[str, str] | None = None) -> list[str]:
        metadata = list((headers or {}).items())
        return [self.shop.client.call("Relay", metadata, name="n").text for _ in range(n)]

    def outbound(self, name: str) -> float | None:
        return counter(self.metrics(), f'{name}{{resource="{RESOURCE}"}}')


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build_tree(SERVICE, tmp_path_factory.mktemp("lanes-grpc") / "governed", key)


@pytest.fixture(scope="module", params=["sync", "aio"])
def shop(request: pytest.FixtureRequest, tree: Path, key: str, base: StockServer,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThroughGrpc]:
    kind: str = request.param
    with serve_shop(kind, tree, key, tmp_path_factory.mktemp(kind), "service-x:50051",
                    lanes(base.address, None, ALL)) as served:
        svc = ThroughGrpc(served)
        svc.who(1)  # the first call starts the engine
        served.ready()
        yield svc


def test_untagged_calls_only_reach_base(shop: ThroughGrpc, base: StockServer,
                                        gray: StockServer) -> None:
    scenarios.untagged_calls_only_reach_base(shop, base, gray)


def test_tagged_calls_reach_the_lane_instance_per_call(shop: ThroughGrpc, base: StockServer,
                                                        gray: StockServer) -> None:
    shop.rules(lanes(base.address, gray.address, ALL))
    scenarios.tagged_calls_reach_the_lane_instance(shop, gray, base_between=True)
    assert f'instpy_requests_passed_total{{resource="{RESOURCE}"}}' in shop.metrics()


def test_a_lane_without_an_instance_falls_back_to_base(shop: ThroughGrpc,
                                                       base: StockServer) -> None:
    scenarios.a_lane_without_an_instance_falls_back_to_base(shop, base)


def test_a_lane_instance_that_refuses_is_retried_on_base(shop: ThroughGrpc,
                                                         base: StockServer) -> None:
    scenarios.a_refusing_lane_instance_is_retried_on_base(shop, base)

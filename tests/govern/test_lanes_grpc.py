"""Full-link gray release through gRPC, in a governed build of fixtures/grpc_shop whose Relay
calls the stock service at `service-x:50051` through its own channel (sync server with a sync
channel, aio server with an aio channel): the lane tag arrives as call metadata (or the call
matches the lane), leaves on the outbound call, and picks the instance per call — base for
untagged calls, the lane's instance for tagged ones, base when the lane has none there or its
instance refuses the connection (retried on base, counted as a fallback).
"""

from __future__ import annotations

import concurrent.futures
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from grpc_support import SERVICE, AioClient, SyncClient
from lanes_support import FALLBACK, ROUTED, closed_address, counter, lanes
from service_support import free_port, http, instpy, mint_key, serve, until, write_rules
from shop_api import shop_pb2, shop_pb2_grpc  # type: ignore[import-not-found]

APPLIED = '"event": "config_applied"'
RESOURCE = "grpc://service-x:50051/shop.Stock/Count"
ALL = "metrics: {all_resources: true}\n"
TAGGED = [("x-mse-tag", "gray")]
MATCHING = [("x-user", "7")]


class Named(shop_pb2_grpc.StockServicer):  # type: ignore[misc]
    """A stock instance that answers with its name and remembers the lane tags it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        self.tags: list[str | None] = []
        self._lock = threading.Lock()

    def Count(self, request: Any, context: grpc.ServicerContext) -> Any:
        tag = dict(context.invocation_metadata()).get("x-mse-tag")
        with self._lock:
            self.hits += 1
            self.tags.append(tag)
        return shop_pb2.Reply(text=self.name)


class Instance:
    """A plain gRPC server on loopback serving `Named`; always stopped."""

    def __init__(self, name: str) -> None:
        self.stock = Named(name)
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        shop_pb2_grpc.add_StockServicer_to_server(self.stock, self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def __enter__(self) -> Instance:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None).wait(10)


@pytest.fixture(scope="module")
def key() -> str:
    return mint_key("shop")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    out = tmp_path_factory.mktemp("lanes-grpc") / "governed"
    done = instpy("build", str(SERVICE), "--govern", "--format", "tree", "-o", str(out),
                  "--no-cache", env={"INSTPY_LICENSE_KEY": key})
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def base() -> Iterator[Instance]:
    with Instance("base") as instance:
        yield instance


@pytest.fixture(scope="module")
def gray() -> Iterator[Instance]:
    with Instance("gray") as instance:
        yield instance


@dataclass
class Shop:
    client: SyncClient | AioClient
    governance: Path
    metrics_url: str
    log: Path

    def rules(self, text: str) -> None:
        if self.governance.read_text() == text:
            return
        before = self.log.read_text().count(APPLIED)
        write_rules(self.governance, text)
        until(lambda: self.log.read_text().count(APPLIED) > before, 3.0)

    def metrics(self) -> str:
        return http("GET", self.metrics_url).body

    def relay(self, n: int, metadata: list[tuple[str, str]] | None = None) -> list[str]:
        return [self.client.call("Relay", metadata or (), name="n").text for _ in range(n)]


@pytest.fixture(scope="module", params=["sync", "aio"])
def shop(request: pytest.FixtureRequest, tree: Path, key: str, base: Instance,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    kind: str = request.param
    tmp = tmp_path_factory.mktemp(kind)
    port, metrics_port = free_port(), free_port()
    governance = tmp / "governance.yaml"
    governance.write_text(lanes(base.address, None, ALL))
    log = tmp / "server.log"
    env = {
        "PYTHONPATH": str(tree), "PORT": str(port), "INSTPY_GOVERNANCE": str(governance),
        "INSTPY_METRICS_PORT": str(metrics_port), "INSTPY_LICENSE_KEY": key,
        "STOCK_TARGET": "service-x:50051",
    }
    entry = "sync_server.py" if kind == "sync" else "aio_server.py"
    with serve([sys.executable, entry], port, env, tree, log):
        client = SyncClient(port) if kind == "sync" else AioClient(port)
        try:
            svc = Shop(client, governance, f"http://127.0.0.1:{metrics_port}/metrics", log)
            svc.relay(1)
            until(lambda: http("GET", svc.metrics_url).status == 200, 10)
            yield svc
        finally:
            client.close()


def test_untagged_calls_only_reach_base(shop: Shop, base: Instance, gray: Instance) -> None:
    shop.rules(lanes(base.address, gray.address, ALL))
    hits = gray.stock.hits
    assert shop.relay(3) == ["base"] * 3
    assert shop.relay(2, [("x-user", "8")]) == ["base"] * 2  # matches no lane
    assert gray.stock.hits == hits
    assert base.stock.tags[-5:] == [None] * 5


def test_tagged_calls_reach_the_lane_instance_per_call(shop: Shop, base: Instance,
                                                        gray: Instance) -> None:
    shop.rules(lanes(base.address, gray.address, ALL))
    routed = counter(shop.metrics(), ROUTED)
    # the same channel serves both lanes, call by call
    assert shop.relay(2, TAGGED) == ["gray"] * 2  # the tag came as metadata from upstream
    assert shop.relay(1) == ["base"]
    assert shop.relay(2, MATCHING) == ["gray"] * 2  # this service matched the lane
    assert gray.stock.tags[-4:] == ["gray"] * 4  # the tag leaves as metadata
    assert counter(shop.metrics(), ROUTED) == routed + 4
    assert f'instpy_requests_passed_total{{resource="{RESOURCE}"}}' in shop.metrics()


def test_a_lane_without_an_instance_falls_back_to_base(shop: Shop, base: Instance) -> None:
    shop.rules(lanes(base.address, None, ALL))
    fallback = counter(shop.metrics(), FALLBACK)
    assert shop.relay(3, TAGGED) == ["base"] * 3
    assert base.stock.tags[-3:] == ["gray"] * 3  # a later hop can re-enter the lane
    assert counter(shop.metrics(), FALLBACK) == fallback + 3


def test_a_lane_instance_that_refuses_is_retried_on_base(shop: Shop, base: Instance) -> None:
    shop.rules(lanes(base.address, closed_address(), ALL))
    metrics = shop.metrics()
    fallback = counter(metrics, FALLBACK)
    completed = counter(metrics, f'instpy_requests_completed_total{{resource="{RESOURCE}"}}')
    errors = counter(metrics, f'instpy_requests_errors_total{{resource="{RESOURCE}"}}')
    hits = base.stock.hits
    assert shop.relay(3, TAGGED) == ["base"] * 3
    assert base.stock.hits == hits + 3
    metrics = shop.metrics()
    assert counter(metrics, FALLBACK) == fallback + 3
    # one governed call each, ending as its retry did
    assert counter(metrics, f'instpy_requests_completed_total{{resource="{RESOURCE}"}}') \
        == completed + 3
    assert counter(metrics, f'instpy_requests_errors_total{{resource="{RESOURCE}"}}') == errors

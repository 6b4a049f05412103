"""Real gRPC clients and a real gRPC dependency for the governed gRPC service tests.

The fixture's generated modules (`fixtures/grpc_shop/shop_api`) are imported from the fixture
itself; the clients and the stock dependency run in the test process on the plain (unbuilt)
grpcio, so only the service under test is governed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]
from service_support import REPO, Governed, governed

SERVICE = REPO / "fixtures" / "grpc_shop"
if str(SERVICE) not in sys.path:
    sys.path.insert(0, str(SERVICE))

from shop_api import shop_pb2, shop_pb2_grpc  # type: ignore[import-not-found]  # noqa: E402

Metadata = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Outcome:
    """How one call ended, whichever client made it."""

    code: grpc.StatusCode
    details: str = ""
    text: str = ""
    peak: int = 0
    texts: tuple[str, ...] = ()  # a streaming reply's messages

    @property
    def ok(self) -> bool:
        return bool(self.code == grpc.StatusCode.OK)


def _ask(fields: dict[str, Any]) -> Any:
    return shop_pb2.Ask(**fields)


class SyncClient:
    """A plain sync channel to the shop; bursts run on threads."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = shop_pb2_grpc.ShopStub(self.channel)

    def call(self, method: str, metadata: Metadata = (), **fields: Any) -> Outcome:
        try:
            if method == "Watch":
                replies = list(self.stub.Watch(_ask(fields), metadata=metadata, timeout=10))
                return Outcome(grpc.StatusCode.OK, texts=tuple(r.text for r in replies))
            reply = getattr(self.stub, method)(_ask(fields), metadata=metadata, timeout=10)
        except grpc.RpcError as exc:
            return Outcome(exc.code(), exc.details() or "")
        return Outcome(grpc.StatusCode.OK, text=reply.text, peak=reply.peak)

    def burst(self, method: str, n: int, **fields: Any) -> list[Outcome]:
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda _: self.call(method, **fields), range(n)))

    def close(self) -> None:
        self.channel.close()


class AioClient:
    """A `grpc.aio` channel to the shop, on its own event loop thread (one loop per module)."""

    def __init__(self, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = port
        self.stub: Any = self._run(self._connect())

    async def _connect(self) -> Any:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        return shop_pb2_grpc.ShopStub(self.channel)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _call(self, method: str, metadata: Metadata, fields: dict[str, Any]) -> Outcome:
        try:
            if method == "Watch":
                texts = [r.text async for r in self.stub.Watch(_ask(fields), metadata=metadata,
                                                                timeout=10)]
                return Outcome(grpc.StatusCode.OK, texts=tuple(texts))
            reply = await getattr(self.stub, method)(_ask(fields), metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return Outcome(exc.code(), exc.details() or "")
        return Outcome(grpc.StatusCode.OK, text=reply.text, peak=reply.peak)

    def call(self, method: str, metadata: Metadata = (), **fields: Any) -> Outcome:
        result: Outcome = self._run(self._call(method, metadata, fields))
        return result

    def burst(self, method: str, n: int, **fields: Any) -> list[Outcome]:
        async def many() -> list[Outcome]:
            return list(await asyncio.gather(*(self._call(method, (), fields)
                                               for _ in range(n))))

        result: list[Outcome] = self._run(many())
        return result

    def close(self) -> None:
        self._run(self.channel.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Stock(shop_pb2_grpc.StockServicer):  # type: ignore[misc]
    """The dependency the shop's Relay calls: counts its calls and remembers the lane tags they
    carried; answers with its name when it has one (an instance in a lane test), else with the
    stock of the item asked for; fails its calls while `failing`."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.hits = 0
        self.tags: list[str | None] = []
        self.failing = False
        self._lock = threading.Lock()

    def Count(self, request: Any, context: grpc.ServicerContext) -> Any:
        tag = dict(context.invocation_metadata()).get("x-mse-tag")
        with self._lock:
            self.hits += 1
            self.tags.append(tag)
        if self.failing:
            context.abort(grpc.StatusCode.INTERNAL, "stock database is down")
        return shop_pb2.Reply(text=self.name or f"stock has 42 for {request.name}")


class StockServer:
    """A plain gRPC server on loopback serving a `Stock`; always stopped."""

    def __init__(self, name: str | None = None) -> None:
        self.stock = Stock(name)
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        shop_pb2_grpc.add_StockServicer_to_server(self.stock, self.server)
        self.port = int(self.server.add_insecure_port("127.0.0.1:0"))
        self.address = f"127.0.0.1:{self.port}"

    @property
    def hits(self) -> int:
        return self.stock.hits

    @property
    def tags(self) -> list[str | None]:
        return self.stock.tags

    def __enter__(self) -> StockServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None).wait(10)


@dataclass
class Shop(Governed):
    """The governed shop being served (`sync`: grpc.server, `aio`: grpc.aio.server) and a
    client of the same kind."""

    kind: str
    client: SyncClient | AioClient


@contextmanager
def serve_shop(kind: str, tree: Path, key: str, tmp: Path, stock_target: str,
               rules: str = "rules: []\n") -> Iterator[Shop]:
    """Serve the governed shop's `kind` server, its Relay calling `stock_target`; the client is
    closed afterwards. The caller makes the first call (it starts the engine), then `ready()`."""
    entry = "sync_server.py" if kind == "sync" else "aio_server.py"
    with governed([sys.executable, entry], tree, key, tmp, {"STOCK_TARGET": stock_target},
                  rules) as served:
        client = SyncClient(served.port) if kind == "sync" else AioClient(served.port)
        try:
            yield Shop(served.port, served.governance, served.log, served.metrics_url, kind,
                       client)
        finally:
            client.close()

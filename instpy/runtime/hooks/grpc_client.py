"""gRPC client outbound governance, sync and `grpc.aio` channels (grpcio >=1.50,<2).

Choke point: the channel factories `grpc:insecure_channel`, `grpc:secure_channel` and their
`grpc.aio._channel` twins. Every stub call goes through the channel it was made with, so a
channel that carries our interceptor governs every call of every kind; grpc's own interceptor
API (public) hands the interceptor the method name, the metadata and a continuation, and lets it
answer without sending anything. The alternatives are private (`grpc._channel`'s multi-callables,
four classes with several entry points each) or Cython (aio). Sync factories return the channel
wrapped with `grpc.intercept_channel` (on_exit); aio factories take `interceptors=`, so on_enter
prepends ours (instgo's SetParam).

Resource: `grpc://TARGET/package.Service/Method`, TARGET as the service passed it to the factory
(`grpc://127.0.0.1:50051/shop.Stock/Count`, `grpc://stock:50051/shop.Stock/Count`); every call
carries `http.outgoing_headers()` as metadata.

Lanes, per call: a real channel connects to one address for its life, so the factory's channel is
wrapped in one that keeps the service's TARGET and picks, for each call, the address
`http.route("grpc://TARGET")` gives for the calling request's lane (an instance of its lane, else
base; TARGET itself when no `services:` entry names it), with a real channel per routed address
created on first use by the same factory with the same arguments (options, credentials,
compression, the user's interceptors). When a lane instance refuses the connection (UNAVAILABLE,
failed to connect), a unary-unary call is sent again to `http.route_fallback`'s base instance
while still marked as a client call, so it is governed once and ends as the retry did: sync calls
in the routing channel under our interceptor (`__call__`/`with_call`; `future()` and streaming
calls are routed but not retried), aio calls in our interceptor, which awaits the call anyway.

A refused call never reaches the server: it fails like a real call that got RESOURCE_EXHAUSTED
(limits) or UNAVAILABLE (open breaker, or a `degrade:` resource — the dependency is switched
off), i.e. a `grpc.RpcError` with `.code()` and `.details()` (the fallback body): the sync
`stub.M(...)` and `future().result()` raise it, a response stream raises it on the first read;
aio calls raise `grpc.aio.AioRpcError`. A fallback *value* is not meaningful for gRPC (the stub
must return a message of the method's type), so `degrade:` answers with that error too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]

from instpy.runtime.call import Call
from instpy.runtime.governance import Blocked
from instpy.runtime.hooks.grpc_common import (
    admit,
    admit_async,
    callee_error,
    connect_failed,
    failed,
    is_idle,
    refusal_code,
    refusal_details,
    with_metadata,
)
from instpy.runtime.hooks.http import (
    Admission,
    mark_client,
    nested_client,
    outgoing_headers,
    route,
    route_fallback,
    unmark_client,
)

DISTRIBUTION = "grpcio"
VERSIONS = ">=1.50,<2"

_SCHEME = "grpc://"
_WHERE = "instpy.runtime.hooks.grpc_client"


# Set while this module creates a routed channel with a hooked factory: the hooks stand aside.
_RAW: ContextVar[bool] = ContextVar("instpy_grpc_raw_channel", default=False)


def _factory(fingerprint: str) -> Callable[..., Any]:
    """The (hooked) factory a channel was made with, to make its routed twins."""
    secure = fingerprint.endswith(":secure_channel")
    module: Any = grpc.aio if fingerprint.startswith("grpc.aio") else grpc
    factory: Callable[..., Any] = module.secure_channel if secure else module.insecure_channel
    return factory


class _Lanes:
    """One channel as the service made it: its target (maybe a service named under `services:`)
    and a real channel per address calls were routed to, made like the original on first use."""

    def __init__(self, call: Call, resources: _Resources | None = None) -> None:
        self.target = str(call.params["target"])
        self.url = _SCHEME + self.target
        self.resources = resources  # aio: the governors' resource names
        self.factory = _factory(call.function)
        self.params = dict(call.params)
        self.original: Any = None
        self.channels: dict[str, Any] = {}
        self.methods: dict[bytes, tuple[tuple[Any, ...], dict[str, Any]]] = {}  # aio retries
        self._lock = threading.Lock()

    def address(self) -> str:
        """Where the calling request's call goes now (the target itself if routing fails: we
        fail open)."""
        try:
            routed = route(self.url)
        except Exception as exc:
            failed(_WHERE, exc)
            return self.target
        return routed[len(_SCHEME):] if routed != self.url else self.target

    def fallback(self, address: str) -> str | None:
        """After `address` refused the connection: a base address to retry on, if it is a lane
        instance of the service."""
        try:
            base = route_fallback(_SCHEME + address)
        except Exception as exc:
            failed(_WHERE, exc)
            return None
        return base[len(_SCHEME):] if base is not None else None

    def channel(self, address: str) -> Any:
        if address == self.target:
            return self.original
        found = self.channels.get(address)
        if found is None:
            with self._lock:
                found = self.channels.get(address)
                if found is None:
                    found = self.channels[address] = self._make(address)
        return found

    def _make(self, address: str) -> Any:
        params = {**self.params, "target": address}
        if self.resources is not None:  # aio: our governors, then the user's interceptors
            params["interceptors"] = [*_aio_governors(self.resources, self, address),
                                      *(params.get("interceptors") or ())]
        token = _RAW.set(True)
        try:
            return self.factory(**params)
        finally:
            _RAW.reset(token)

    def all(self) -> list[Any]:
        with self._lock:
            return [self.original, *self.channels.values()]


def on_enter_channel(call: Call) -> None:
    """`grpc.insecure_channel` / `grpc.secure_channel`: remember how the channel is made."""
    if not _RAW.get():
        call.data["lanes"] = _Lanes(call)


def on_exit_channel(call: Call) -> None:
    """Route each call by its request's lane, and govern it with our interceptor."""
    lanes: _Lanes | None = call.data.get("lanes")
    if call.exception is None and lanes is not None:
        lanes.original = call.return_value
        call.return_value = grpc.intercept_channel(_LaneChannel(lanes),
                                                   SyncGovernor(lanes.url))


def on_enter_aio_channel(call: Call) -> None:
    """`grpc.aio.insecure_channel` / `secure_channel`: prepend our interceptors."""
    if _RAW.get():
        return
    given = list(call.params.get("interceptors") or ())
    if any(isinstance(i, _AioGovernor) for i in given):
        return
    lanes = _Lanes(call, _Resources(_SCHEME + str(call.params["target"])))
    call.data["lanes"] = lanes
    given[:0] = _aio_governors(lanes.resources, lanes, lanes.target)  # type: ignore[arg-type]
    call.params["interceptors"] = given


def on_exit_aio_channel(call: Call) -> None:
    """Route each call by its request's lane."""
    lanes: _Lanes | None = call.data.get("lanes")
    if call.exception is None and lanes is not None:
        lanes.original = call.return_value
        call.return_value = _AioLaneChannel(lanes)


class _Routed:
    """One method of a routing channel: each call goes to the real channel of the address its
    request's lane picks (the multicallable per address made once)."""

    def __init__(self, lanes: _Lanes, kind: str, method: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self._lanes = lanes
        self._kind = kind
        self._method = method
        self._args = args
        self._kwargs = kwargs
        self._callables: dict[str, Any] = {}

    def _on(self, address: str) -> Any:
        found = self._callables.get(address)
        if found is None:
            channel = self._lanes.channel(address)
            found = getattr(channel, self._kind)(self._method, *self._args, **self._kwargs)
            self._callables[address] = found
        return found

    def _base(self, address: str, exc: grpc.RpcError) -> str | None:
        if self._kind != "unary_unary" or not connect_failed(exc.code(), exc.details()):
            return None
        return self._lanes.fallback(address)

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        address = self._lanes.address()
        try:
            return self._on(address)(request, *args, **kwargs)
        except grpc.RpcError as exc:
            base = self._base(address, exc)
            if base is None:
                raise
        return self._on(base)(request, *args, **kwargs)

    def with_call(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        address = self._lanes.address()
        try:
            return self._on(address).with_call(request, *args, **kwargs)
        except grpc.RpcError as exc:
            base = self._base(address, exc)
            if base is None:
                raise
        return self._on(base).with_call(request, *args, **kwargs)

    def future(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self._on(self._lanes.address()).future(request, *args, **kwargs)


class _LaneChannel(grpc.Channel):  # type: ignore[misc]
    """A sync channel whose calls go where their request's lane says (see `_Routed`)."""

    def __init__(self, lanes: _Lanes) -> None:
        self._lanes = lanes
        # grpc's interceptor asks its channel for the multicallable on every call: made once
        self._made: dict[tuple[Any, ...], _Routed] = {}

    def _routed(self, kind: str, method: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> _Routed:
        key = (kind, method, args, *kwargs.items())
        try:
            found = self._made.get(key)
        except TypeError:  # an unhashable argument: made for this call only
            return _Routed(self._lanes, kind, method, args, kwargs)
        if found is None:
            found = self._made[key] = _Routed(self._lanes, kind, method, args, kwargs)
        return found

    def unary_unary(self, method: Any, *args: Any, **kwargs: Any) -> _Routed:
        return self._routed("unary_unary", method, args, kwargs)

    def unary_stream(self, method: Any, *args: Any, **kwargs: Any) -> _Routed:
        return self._routed("unary_stream", method, args, kwargs)

    def stream_unary(self, method: Any, *args: Any, **kwargs: Any) -> _Routed:
        return self._routed("stream_unary", method, args, kwargs)

    def stream_stream(self, method: Any, *args: Any, **kwargs: Any) -> _Routed:
        return self._routed("stream_stream", method, args, kwargs)

    def subscribe(self, callback: Callable[[Any], None], try_to_connect: bool = False) -> None:
        self._lanes.original.subscribe(callback, try_to_connect=try_to_connect)

    def unsubscribe(self, callback: Callable[[Any], None]) -> None:
        self._lanes.original.unsubscribe(callback)

    def close(self) -> None:
        for channel in self._lanes.all():
            channel.close()

    def __enter__(self) -> _LaneChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AioRouted(_Routed):
    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self._on(self._lanes.address())(request, *args, **kwargs)


class _AioLaneChannel(grpc.aio.Channel):  # type: ignore[misc]
    """An aio channel whose calls go where their request's lane says; our interceptor on each
    real channel retries a refused lane instance on base (see `_AioUnaryUnary`)."""

    def __init__(self, lanes: _Lanes) -> None:
        self._lanes = lanes

    def _routed(self, kind: str, method: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> _AioRouted:
        if kind == "unary_unary":
            key = method.encode() if isinstance(method, str) else method
            self._lanes.methods[key] = (args, kwargs)
        return _AioRouted(self._lanes, kind, method, args, kwargs)

    def unary_unary(self, method: Any, *args: Any, **kwargs: Any) -> _AioRouted:
        return self._routed("unary_unary", method, args, kwargs)

    def unary_stream(self, method: Any, *args: Any, **kwargs: Any) -> _AioRouted:
        return self._routed("unary_stream", method, args, kwargs)

    def stream_unary(self, method: Any, *args: Any, **kwargs: Any) -> _AioRouted:
        return self._routed("stream_unary", method, args, kwargs)

    def stream_stream(self, method: Any, *args: Any, **kwargs: Any) -> _AioRouted:
        return self._routed("stream_stream", method, args, kwargs)

    async def close(self, grace: float | None = None) -> None:
        for channel in self._lanes.all():
            await channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> Any:
        return self._lanes.original.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: Any) -> None:
        await self._lanes.original.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._lanes.original.channel_ready()

    async def __aenter__(self) -> _AioLaneChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(None)


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _ClientCallDetails(_Details, grpc.ClientCallDetails):  # type: ignore[misc]
    """The sync call details with our metadata added (grpc's own class is private)."""


class Refused(grpc.RpcError, grpc.Future, grpc.Call):  # type: ignore[misc]
    """What a refused sync call is: a failed RPC that is also its own Call and Future, as grpc's
    interceptor machinery expects (`result()` raises it, a response stream raises it on read)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> None:
        return None

    def trailing_metadata(self) -> None:
        return None

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> Refused:
        return self

    def traceback(self, timeout: float | None = None) -> None:
        return None

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)

    def __iter__(self) -> Refused:
        return self

    def __next__(self) -> Any:
        raise self

    def __str__(self) -> str:
        return f"<Refused RPC: {self._code}, {self._details!r}>"


class _Resources:
    """One resource name per method of one channel, built once."""

    def __init__(self, base: str) -> None:
        self._base = base
        self._names: dict[str | bytes, str] = {}

    def __call__(self, method: str | bytes) -> str:
        name = self._names.get(method)
        if name is None:
            text = method.decode() if isinstance(method, bytes) else method
            name = self._names[method] = self._base + text
        return name


def _finisher(entry: Admission) -> Callable[[Any], None]:
    def done(future: Any) -> None:
        entry.exit(callee_error(future.code(), None))

    return done


_SYNC_KINDS: tuple[type, ...] = (
    grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor,
)


class SyncGovernor(*_SYNC_KINDS):  # type: ignore[misc]
    """The interceptor every sync channel gets; the same code serves the four kinds of call."""

    def __init__(self, base: str) -> None:
        self._resource = _Resources(base)

    def _intercept(self, continuation: Callable[[Any, Any], Any], details: Any,
                   request: Any) -> Any:
        if nested_client():
            return continuation(details, request)
        try:
            headers = outgoing_headers()
            if headers:
                details = _ClientCallDetails(
                    details.method, details.timeout, with_metadata(details.metadata, headers),
                    details.credentials, details.wait_for_ready,
                    getattr(details, "compression", None))
            result = admit(self._resource(details.method), "outbound", None)
        except Exception as exc:  # fail open: the call goes out ungoverned
            failed(_WHERE, exc)
            return continuation(details, request)
        if isinstance(result, Blocked):
            return Refused(refusal_code(result), refusal_details(result))
        token = mark_client()
        try:
            outcome = continuation(details, request)
        except BaseException as exc:
            result.exit(exc)
            raise
        finally:
            unmark_client(token)
        if not is_idle(result):
            outcome.add_done_callback(_finisher(result))
        return outcome

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


# grpc.aio sorts a channel's interceptors by kind and files each under its first matching kind
# only, so each kind needs its own object; they share the resource names of their channel.


class _AioGovernor:
    def __init__(self, resource: _Resources, lanes: _Lanes | None = None,
                 address: str | None = None) -> None:
        self._resource = resource
        self._lanes = lanes
        self._address = address  # the address this governor's channel connects to

    def _retry(self, details: Any, request: Any, exc: grpc.aio.AioRpcError) -> Any:
        """A lane instance refused the connection: the same unary call sent to a base instance
        (still marked as a client call: the base channel's governor stands aside); else None."""
        lanes, address = self._lanes, self._address
        if lanes is None or address is None or not connect_failed(exc.code(), exc.details()):
            return None
        known = lanes.methods.get(details.method)
        base = lanes.fallback(address) if known is not None else None
        if base is None or known is None:
            return None
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        send = lanes.channel(base).unary_unary(method, *known[0], **known[1])
        return send(request, timeout=details.timeout, metadata=details.metadata,
                    credentials=details.credentials, wait_for_ready=details.wait_for_ready)

    async def _admit(self, details: Any) -> tuple[Admission | None, Any]:
        """(entry, details to send); raises the refusal. (None, details): go on ungoverned."""
        try:
            headers = outgoing_headers()
            if headers:
                details = details._replace(metadata=grpc.aio.Metadata(
                    *with_metadata(details.metadata, headers)))
            result = await admit_async(self._resource(details.method), "outbound", None)
        except Exception as exc:
            failed(_WHERE, exc)
            return None, details
        if isinstance(result, Blocked):
            raise grpc.aio.AioRpcError(refusal_code(result), grpc.aio.Metadata(),
                                       grpc.aio.Metadata(), refusal_details(result))
        return result, details

    async def _start(self, continuation: Callable[[Any, Any], Any], details: Any,
                     request: Any) -> Any:
        """Admit and send a call whose outcome is reported by a done callback (streams)."""
        if nested_client():
            return await continuation(details, request)
        entry, details = await self._admit(details)
        if entry is None:
            return await continuation(details, request)
        token = mark_client()
        try:
            call = await continuation(details, request)
        except BaseException as exc:
            entry.exit(exc)
            raise
        finally:
            unmark_client(token)
        if not is_idle(entry):
            call.add_done_callback(_aio_finisher(entry))
        return call


# The loop keeps only weak references to tasks: these stay alive until they have recorded.
_RECORDING: set[asyncio.Future[None]] = set()


def _aio_finisher(entry: Admission) -> Callable[[Any], None]:
    async def record(call: Any) -> None:
        entry.exit(False if call.cancelled() else callee_error(await call.code(), None))

    def done(call: Any) -> None:
        # aio reports the code only to a coroutine; the call is over, so it answers at once.
        task = asyncio.ensure_future(record(call))
        _RECORDING.add(task)
        task.add_done_callback(_RECORDING.discard)

    return done


class _AioUnaryUnary(_AioGovernor, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Callable[[Any, Any], Any],
                                    client_call_details: Any, request: Any) -> Any:
        if nested_client():
            return await continuation(client_call_details, request)
        entry, details = await self._admit(client_call_details)
        if entry is None:
            return await continuation(details, request)
        token = mark_client()
        try:
            call = await continuation(details, request)
            if is_idle(entry):
                return call
            try:
                await call  # a unary call's outcome is its response: wait for it here
            except grpc.aio.AioRpcError as exc:
                retry = self._retry(details, request, exc)
                if retry is None:
                    entry.exit(exc if callee_error(exc.code(), exc) else None)
                    return call  # the caller's await raises the same error
                call = retry  # the call's outcome is the retry's
                try:
                    await call
                except grpc.aio.AioRpcError as again:
                    entry.exit(again if callee_error(again.code(), again) else None)
                    return call
        except BaseException as exc:
            entry.exit(None if isinstance(exc, asyncio.CancelledError) else exc)
            raise
        finally:
            unmark_client(token)
        entry.exit(None)
        return call


class _AioUnaryStream(_AioGovernor, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Callable[[Any, Any], Any],
                                     client_call_details: Any, request: Any) -> Any:
        return await self._start(continuation, client_call_details, request)


class _AioStreamUnary(_AioGovernor, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Callable[[Any, Any], Any],
                                     client_call_details: Any, request_iterator: Any) -> Any:
        return await self._start(continuation, client_call_details, request_iterator)


class _AioStreamStream(_AioGovernor, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Callable[[Any, Any], Any],
                                      client_call_details: Any, request_iterator: Any) -> Any:
        return await self._start(continuation, client_call_details, request_iterator)


def _aio_governors(names: _Resources, lanes: _Lanes | None,
                   address: str | None) -> list[_AioGovernor]:
    """The four interceptors of one real aio channel of `lanes`, connected to `address`."""
    return [kind(names, lanes, address)
            for kind in (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary, _AioStreamStream)]


def aio_governors(base: str) -> list[_AioGovernor]:
    """The four interceptors of one aio channel whose target is `base` (`grpc://TARGET`)."""
    return _aio_governors(_Resources(base), None, None)

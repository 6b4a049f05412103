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
(`grpc://127.0.0.1:50051/shop.Stock/Count`, `grpc://stock:50051/shop.Stock/Count`). The target is
routed through `http.route("grpc://TARGET")` when the channel is created (a channel connects to
one target for its life), and every call carries `http.outgoing_headers()` as metadata.

A refused call never reaches the server: it fails like a real call that got RESOURCE_EXHAUSTED
(limits) or UNAVAILABLE (open breaker, or a `degrade:` resource — the dependency is switched
off), i.e. a `grpc.RpcError` with `.code()` and `.details()` (the fallback body): the sync
`stub.M(...)` and `future().result()` raise it, a response stream raises it on the first read;
aio calls raise `grpc.aio.AioRpcError`. A fallback *value* is not meaningful for gRPC (the stub
must return a message of the method's type), so `degrade:` answers with that error too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]

from instpy.runtime.call import Call
from instpy.runtime.governance import Blocked, Entry
from instpy.runtime.hooks.grpc_common import (
    admit,
    admit_async,
    callee_error,
    failed,
    is_idle,
    refusal_code,
    refusal_details,
    with_metadata,
)
from instpy.runtime.hooks.http import (
    mark_client,
    nested_client,
    outgoing_headers,
    route,
    unmark_client,
)

DISTRIBUTION = "grpcio"
VERSIONS = ">=1.50,<2"

_SCHEME = "grpc://"
_WHERE = "instpy.runtime.hooks.grpc_client"


def _route(call: Call) -> str:
    """Route the factory's target; return the resource prefix `grpc://TARGET` (unrouted: a
    resource names the destination service, not the instance a lane picked)."""
    target = str(call.params["target"])
    routed = route(_SCHEME + target)
    if routed.startswith(_SCHEME):
        call.params["target"] = routed[len(_SCHEME):]
    return _SCHEME + target


def on_enter_channel(call: Call) -> None:
    """`grpc.insecure_channel` / `grpc.secure_channel`: route the target."""
    call.data["base"] = _route(call)


def on_exit_channel(call: Call) -> None:
    """Wrap the new channel with our interceptor."""
    base = call.data.get("base")
    if call.exception is None and base is not None:
        call.return_value = grpc.intercept_channel(call.return_value, SyncGovernor(base))


def on_enter_aio_channel(call: Call) -> None:
    """`grpc.aio.insecure_channel` / `secure_channel`: route the target, prepend ours."""
    base = _route(call)
    given = list(call.params.get("interceptors") or ())
    if not any(isinstance(i, _AioGovernor) for i in given):
        given[:0] = aio_governors(base)
    call.params["interceptors"] = given


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


def _finisher(entry: Entry) -> Callable[[Any], None]:
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
    def __init__(self, resource: _Resources) -> None:
        self._resource = resource

    async def _admit(self, details: Any) -> tuple[Entry | None, Any]:
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


def _aio_finisher(entry: Entry) -> Callable[[Any], None]:
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
                entry.exit(exc if callee_error(exc.code(), exc) else None)
                return call  # the caller's await raises the same error
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


def aio_governors(base: str) -> list[_AioGovernor]:
    """The four interceptors of one aio channel whose target is `base` (`grpc://TARGET`)."""
    names = _Resources(base)
    return [_AioUnaryUnary(names), _AioUnaryStream(names), _AioStreamUnary(names),
            _AioStreamStream(names)]

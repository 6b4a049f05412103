"""gRPC server inbound governance, sync and `grpc.aio` (grpcio >=1.50,<2).

Choke point: the server factories `grpc:server` and `grpc.aio._server:server`. Their on_enter
prepends our interceptor to the `interceptors` parameter (instgo's SetParam), so every server a
service creates gets it before any of the service's own interceptors, whatever way the service
imported `grpc`. Why the factories and not grpc's dispatch:

* `grpc.aio` dispatches calls in Cython (`cygrpc.AioServer`): there is no Python function to
  rewrite there, while its interceptor API is public.
* The sync dispatch (`grpc._server._handle_call`, `_find_method_handler`) is private, changes
  between releases, and runs on the server's single polling thread: a throttled call waiting
  there would stall every other call. Server interceptors are documented API (still labelled
  experimental) with the same shape since grpcio 1.10, and OpenTelemetry relies on them too.

The interceptor is given the method's handler after grpc found it (an unknown method is answered
UNIMPLEMENTED by grpc and not governed) and returns the same kind of handler with a governed
behavior, built once per method and cached. Admission happens inside that behavior — on the
server's worker thread (sync) or in the loop with the loop's sleep (aio) — with the resource
`/package.Service/Method`. A refused call is aborted (RESOURCE_EXHAUSTED, a breaker's or a
degrade's UNAVAILABLE, the fallback body as details): the servicer method never runs.

Streaming: all four kinds are governed. Admission happens when the call starts; for a
streaming response the entry stays open until the stream ends (so concurrency limits count open
streams and RT is the stream's duration). Hot parameters come from the call's metadata
(`from: header`). On a `grpc.aio` server a plain (non-async) servicer method is left ungoverned:
aio can only abort from a coroutine. Tested with grpcio 1.85.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]

from instpy.runtime.call import Call
from instpy.runtime.governance import Blocked
from instpy.runtime.hooks.grpc_common import (
    Lookup,
    admit,
    admit_async,
    callee_error,
    failed,
    metadata_value,
    refusal_code,
    refusal_details,
)
from instpy.runtime.hooks.http import Admission

DISTRIBUTION = "grpcio"
VERSIONS = ">=1.50,<2"

_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
_FACTORIES: dict[str, Callable[..., grpc.RpcMethodHandler]] = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}
Behavior = Callable[..., Any]


def on_enter_server(call: Call) -> None:
    """`grpc.server(...)`: our interceptor goes first."""
    call.params["interceptors"] = _prepend(call.params.get("interceptors"), SyncGovernor)


def on_enter_aio_server(call: Call) -> None:
    """`grpc.aio.server(...)`: our interceptor goes first."""
    call.params["interceptors"] = _prepend(call.params.get("interceptors"), AioGovernor)


def _prepend(interceptors: Any, kind: type[grpc.ServerInterceptor | grpc.aio.ServerInterceptor],
             ) -> list[Any]:
    given = list(interceptors or ())
    if any(isinstance(i, kind) for i in given):
        return given
    return [kind(), *given]


def _lookup(context: Any) -> Lookup:
    def lookup(source: str, name: str) -> object:
        if source == "header":
            return metadata_value(context.invocation_metadata(), name)
        return None  # gRPC has no query string, cookies or path parameters

    return lookup


def _code(context: Any) -> object:
    code = getattr(context, "code", None)
    return code() if code is not None else None


def _raised(entry: Admission, context: Any, exc: BaseException) -> None:
    """Record a governed call that ended with `exc`: the client went away (the call or its
    response stream was cancelled or closed: not the servicer's failure), or the servicer
    raised, which fails the callee unless the code it set says the caller's (an abort with
    INVALID_ARGUMENT, say)."""
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        entry.exit(None)
    else:
        entry.exit(exc if callee_error(_code(context), exc) else None)


class _Governor:
    """Keeps one governed handler per method, rebuilt only if grpc hands out another handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def _governed(self, handler: grpc.RpcMethodHandler | None,
                  method: str | bytes) -> grpc.RpcMethodHandler | None:
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED, nothing to govern
        name = method.decode() if isinstance(method, bytes) else method
        cached = self._handlers.get(name)
        if cached is not None and cached[0] is handler:
            return cached[1]
        try:
            governed = self._wrap(handler, name)
        except Exception as exc:  # fail open: serve the call ungoverned
            failed("instpy.runtime.hooks.grpc_server", exc)
            return handler
        self._handlers[name] = (handler, governed)
        return governed

    def _wrap(self, handler: grpc.RpcMethodHandler, resource: str) -> grpc.RpcMethodHandler:
        for kind in _KINDS:
            behavior = getattr(handler, kind, None)
            if behavior is not None:
                wrapped = self._behavior(behavior, resource, kind.endswith("stream"))
                if wrapped is None:
                    return handler
                return _FACTORIES[kind](wrapped, handler.request_deserializer,
                                        handler.response_serializer)
        return handler

    def _behavior(self, behavior: Behavior, resource: str, streams: bool) -> Behavior | None:
        raise NotImplementedError


class SyncGovernor(_Governor, grpc.ServerInterceptor):  # type: ignore[misc]
    """The interceptor `grpc.server` gets."""

    def intercept_service(self, continuation: Callable[[Any], Any],
                          handler_call_details: Any) -> Any:
        return self._governed(continuation(handler_call_details), handler_call_details.method)

    def _behavior(self, behavior: Behavior, resource: str, streams: bool) -> Behavior:
        return _sync_behavior(behavior, resource, streams)


def _sync_admit(resource: str, context: Any) -> Admission | None:
    try:
        result = admit(resource, "inbound", _lookup(context))
    except Exception as exc:
        failed("instpy.runtime.hooks.grpc_server", exc)
        return None
    if isinstance(result, Blocked):
        context.abort(refusal_code(result), refusal_details(result))
        raise RuntimeError("ServicerContext.abort returned")  # it always raises
    return result


def _sync_behavior(behavior: Behavior, resource: str, streams: bool) -> Behavior:
    def governed(argument: Any, context: Any) -> Any:
        entry = _sync_admit(resource, context)
        if entry is None:
            return behavior(argument, context)
        try:
            result = behavior(argument, context)
        except BaseException as exc:
            _raised(entry, context, exc)
            raise
        if streams:  # the call ends with its response stream
            return _sync_tracked(result, entry, context)
        entry.exit(callee_error(_code(context), None))
        return result

    return governed


def _sync_tracked(responses: Iterator[Any], entry: Admission, context: Any) -> Iterator[Any]:
    try:
        yield from responses
    except BaseException as exc:
        _raised(entry, context, exc)
        raise
    entry.exit(callee_error(_code(context), None))


class AioGovernor(_Governor, grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The interceptor `grpc.aio.server` gets."""

    async def intercept_service(self, continuation: Callable[[Any], Any],
                                handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        return self._governed(handler, handler_call_details.method)

    def _behavior(self, behavior: Behavior, resource: str, streams: bool) -> Behavior | None:
        if inspect.isasyncgenfunction(behavior):
            return _aio_stream(behavior, resource)
        if inspect.iscoroutinefunction(behavior):
            return _aio_call(behavior, resource)
        return None  # a plain function on an aio server: aio can only abort from a coroutine


async def _aio_admit(resource: str, context: Any) -> Admission | None:
    try:
        result = await admit_async(resource, "inbound", _lookup(context))
    except Exception as exc:
        failed("instpy.runtime.hooks.grpc_server", exc)
        return None
    if isinstance(result, Blocked):
        await context.abort(refusal_code(result), refusal_details(result))
        raise RuntimeError("ServicerContext.abort returned")  # it always raises
    return result


def _aio_call(behavior: Behavior, resource: str) -> Behavior:
    async def governed(argument: Any, context: Any) -> Any:
        entry = await _aio_admit(resource, context)
        if entry is None:
            return await behavior(argument, context)
        try:
            response = await behavior(argument, context)
        except BaseException as exc:
            _raised(entry, context, exc)
            raise
        entry.exit(callee_error(_code(context), None))
        return response

    return governed


def _aio_stream(behavior: Behavior, resource: str) -> Behavior:
    async def governed(argument: Any, context: Any) -> AsyncIterator[Any]:
        entry = await _aio_admit(resource, context)
        if entry is None:
            async for item in behavior(argument, context):
                yield item
            return
        try:
            async for item in behavior(argument, context):
                yield item
        except BaseException as exc:
            _raised(entry, context, exc)
            raise
        entry.exit(callee_error(_code(context), None))

    return governed

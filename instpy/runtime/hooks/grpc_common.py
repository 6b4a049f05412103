"""What the gRPC server and client hooks share: admission, status codes, metadata.

gRPC answers a refused call with a status code, not an HTTP status, and the code depends on
which rule family refused it: a limit (system, flow, concurrency, hot parameter) is
RESOURCE_EXHAUSTED — the code grpc's own `maximum_concurrent_rpcs` uses — while an open breaker
or a degraded resource is UNAVAILABLE (the callee is switched off; clients may retry elsewhere).
So these hooks need the engine's `Blocked` itself, not the HTTP answer `http.admit_*` makes of
it; the fallback's `body` becomes the status details, its HTTP `status` does not apply.

A call counts as a failure of the callee (for circuit breakers and error statistics) when it
ends with a code gRPC maps to a 5xx (UNKNOWN, INTERNAL, UNAVAILABLE, DATA_LOSS, UNIMPLEMENTED,
DEADLINE_EXCEEDED) or raises without setting one; NOT_FOUND, INVALID_ARGUMENT, CANCELLED and
the like are the caller's, as 4xx are for HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import grpc  # type: ignore[import-untyped]

from instpy.runtime import injected
from instpy.runtime.governance import Blocked, HttpFallback
from instpy.runtime.hooks.http import (
    IDLE_ADMISSION,
    Admission,
    admit_named,
    admit_named_async,
    enter_lane,
)

Lookup = Callable[[str, str], object]

_REFUSED = {"circuit_breaker": grpc.StatusCode.UNAVAILABLE,
            "degrade": grpc.StatusCode.UNAVAILABLE}

# grpc.StatusCode members, and the integers grpc's Cython layer reports for the same codes.
_CALLEE_ERRORS: frozenset[object] = frozenset(
    x
    for code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
                 grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
                 grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DEADLINE_EXCEEDED)
    for x in (code, code.value[0])
)
_OK: frozenset[object] = frozenset((grpc.StatusCode.OK, 0))


def _lane(result: Admission | Blocked, traffic: str,
          lookup: Lookup | None) -> Admission | Blocked:
    """An admitted inbound call takes its lane tag from its metadata, as HTTP requests do."""
    if traffic == "inbound" and lookup is not None and result.__class__ is Admission:

        def header(name: str) -> str | None:
            value = lookup("header", name)
            return None if value is None else str(value)

        enter_lane(lookup, header)
    return result


def admit(resource: str, traffic: str, lookup: Lookup | None) -> Admission | Blocked:
    """Govern one call (sync): the Admission to exit when it ends, or why it was refused."""
    return _lane(admit_named(resource, traffic, lookup), traffic, lookup)


async def admit_async(resource: str, traffic: str, lookup: Lookup | None) -> Admission | Blocked:
    """`admit` for grpc.aio: a throttled call waits with the loop's sleep."""
    return _lane(await admit_named_async(resource, traffic, lookup), traffic, lookup)


def is_idle(entry: Admission) -> bool:
    """Nothing to record for this call (no rule, no statistics): skip the bookkeeping."""
    return entry is IDLE_ADMISSION


def refusal_code(blocked: Blocked) -> grpc.StatusCode:
    """RESOURCE_EXHAUSTED for limits; UNAVAILABLE for an open breaker or a degraded resource."""
    return _REFUSED.get(blocked.family, grpc.StatusCode.RESOURCE_EXHAUSTED)


def refusal_details(blocked: Blocked) -> str:
    """The configured fallback body, else a message naming the resource and the family."""
    fallback = blocked.fallback
    if isinstance(fallback, HttpFallback):
        return fallback.body
    return f"{blocked.resource} refused by instpy governance ({blocked.family})"


def callee_error(code: object, exception: BaseException | None) -> bool:
    """Whether a call that ended with `code` (None: never set) and `exception` failed the callee."""
    if code is None or code in _OK:
        return exception is not None
    return code in _CALLEE_ERRORS


def connect_failed(code: object, details: str | None) -> bool:
    """Whether a call failed because the channel could not connect (UNAVAILABLE, "failed to
    connect"): the request never reached the server, so sending it elsewhere is safe."""
    return code == grpc.StatusCode.UNAVAILABLE and "connect" in (details or "").lower()


def metadata_value(metadata: Iterable[tuple[str, object]] | None, name: str) -> object:
    """The first value of metadata key `name` (gRPC keys are lowercase), or None."""
    if not metadata:
        return None
    key = name.lower()
    for item in metadata:
        if item[0] == key:
            return item[1]
    return None


def with_metadata(metadata: Iterable[tuple[str, str]] | None,
                  extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The call's metadata plus `extra` pairs (keys lowercased, as gRPC requires)."""
    out = list(metadata or ())
    out.extend((name.lower(), value) for name, value in extra)
    return out


def failed(where: str, exc: BaseException) -> None:
    """Our interceptor code raised: count it and log it once, like a raising hook; the call then
    goes on ungoverned (fail open)."""
    injected._record_failure(where, exc, "raised inside its gRPC interceptor")

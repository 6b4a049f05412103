"""Lane tests' shared pieces: instances of a dependency that say who answered, the
governance.yaml that names them, and the scenarios every client's lane tests run.

A governed service calls `http://service-x/who` (gRPC: `service-x:50051`); `services:` maps
`service-x` to a base and (maybe) a gray instance on loopback; the instance that answers says
its name, so a test sees where each call went, and what lane tag it carried.
"""

from __future__ import annotations

import http.server as http_server
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pytest
from service_support import LoopbackServer, free_port
from web_support import Server

SERVICE = "service-x"
TAGGED = {"x-mse-tag": "gray"}  # sent by an upstream governed service
MATCHING = {"x-user": "7"}  # matches the gray lane: this service is the first governed hop
ALL = "metrics: {all_resources: true}\n"
HTTP_RESOURCE = f"GET http://{SERVICE}/who"  # what calls to service-x count under
FALLBACK = f'instpy_lane_fallback_total{{lane="gray",service="{SERVICE}"}}'
ROUTED = f'instpy_lane_routed_total{{lane="gray",service="{SERVICE}"}}'


class Instance(LoopbackServer):
    """One instance of service-x on loopback: answers every GET with its name; counts the calls
    it got and remembers the lane tags they carried."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.hits = 0
        self.tags: list[str | None] = []
        self.address = f"127.0.0.1:{self.port}"

    def answer(self, request: http_server.BaseHTTPRequestHandler) -> tuple[int, bytes]:
        self.hits += 1
        self.tags.append(request.headers.get("x-mse-tag"))
        return 200, self.name.encode()


def closed_address() -> str:
    """A loopback address where nothing listens (a lane instance that is down)."""
    return f"127.0.0.1:{free_port()}"


def lanes(base: str, gray: str | None = None, extra: str = "") -> str:
    """governance.yaml: the gray lane (x-user: 7), and service-x's instances."""
    instances = f'base: ["{base}"]' + (f', gray: ["{gray}"]' if gray else "")
    return (
        "lanes:\n  - name: gray\n    tag: gray\n"
        '    match: {all: [{header: x-user, equals: "7"}]}\n'
        f"services:\n  {SERVICE}: {{{instances}}}\n" + extra
    )


def counter(metrics: str, line: str) -> int:
    """The value of the metric line starting with `line` (0 when absent)."""
    found = re.search(re.escape(line) + r" (\d+)", metrics)
    return 0 if found is None else int(found.group(1))


class Reached(Protocol):
    """An instance of service-x: its address, how many calls reached it, their lane tags."""

    @property
    def address(self) -> str: ...

    @property
    def hits(self) -> int: ...

    @property
    def tags(self) -> list[str | None]: ...


R = TypeVar("R", bound=Reached)


def instance_fixtures(make: Callable[[str], AbstractContextManager[R]]) -> tuple[Any, Any]:
    """The module fixtures `base` and `gray`: an instance of service-x each, `make(name)`."""

    def fixture(name: str) -> Any:
        @pytest.fixture(scope="module", name=name)
        def instance() -> Iterator[R]:
            with make(name) as made:
                yield made

        return instance

    return fixture("base"), fixture("gray")


class Caller(Protocol):
    """A governed service whose calls to service-x a lane scenario follows."""

    def rules(self, text: str) -> object: ...

    def metrics(self) -> str: ...

    def who(self, n: int, headers: Mapping[str, str] | None = None) -> list[str]:
        """Make `n` calls that reach service-x; who answered each (a failed call says how)."""
        ...

    def outbound(self, name: str) -> float | None:
        """The counter `name` of the calls to service-x (None: no such line)."""
        ...


@dataclass
class ThroughHttp:
    """A governed HTTP service whose `path` calls service-x."""

    svc: Server
    path: str

    def rules(self, text: str) -> object:
        return self.svc.rules(text)

    def metrics(self) -> str:
        return self.svc.metrics()

    def who(self, n: int, headers: Mapping[str, str] | None = None) -> list[str]:
        replies = [self.svc.get(self.path, dict(headers or {})) for _ in range(n)]
        return [r.body if r.status == 200 else f"{r.status} {r.body}" for r in replies]

    def outbound(self, name: str) -> float | None:
        return self.svc.metric(name, HTTP_RESOURCE)


def untagged_calls_only_reach_base(svc: Caller, base: Reached, gray: Reached) -> None:
    svc.rules(lanes(base.address, gray.address, ALL))
    hits = gray.hits
    assert svc.who(3) == ["base"] * 3
    assert svc.who(2, {"x-user": "8"}) == ["base"] * 2  # matches no lane
    assert gray.hits == hits
    assert base.tags[-5:] == [None] * 5


def tagged_calls_reach_the_lane_instance(svc: Caller, gray: Reached, *,
                                         base_between: bool = False) -> None:
    """With the rules naming base and gray in force."""
    routed = counter(svc.metrics(), ROUTED)
    assert svc.who(2, TAGGED) == ["gray"] * 2  # the tag came from an upstream service
    if base_between:  # the same channel serves both lanes, call by call
        assert svc.who(1) == ["base"]
    assert svc.who(2, MATCHING) == ["gray"] * 2  # this service matched the lane
    assert gray.tags[-4:] == ["gray"] * 4  # the tag travels on
    assert counter(svc.metrics(), ROUTED) == routed + 4


def a_lane_without_an_instance_falls_back_to_base(svc: Caller, base: Reached) -> None:
    svc.rules(lanes(base.address, None, ALL))
    fallback = counter(svc.metrics(), FALLBACK)
    assert svc.who(3, TAGGED) == ["base"] * 3
    assert base.tags[-3:] == ["gray"] * 3  # a later hop can re-enter the lane
    assert counter(svc.metrics(), FALLBACK) == fallback + 3


def a_refusing_lane_instance_is_retried_on_base(svc: Caller, base: Reached) -> None:
    svc.rules(lanes(base.address, closed_address(), ALL))
    fallback = counter(svc.metrics(), FALLBACK)
    errors = svc.outbound("instpy_requests_errors_total") or 0
    completed = svc.outbound("instpy_requests_completed_total") or 0
    hits = base.hits
    assert svc.who(3, TAGGED) == ["base"] * 3
    assert base.hits == hits + 3
    assert counter(svc.metrics(), FALLBACK) == fallback + 3
    # one governed call each, ending as its retry did
    assert svc.outbound("instpy_requests_completed_total") == completed + 3
    assert svc.outbound("instpy_requests_errors_total") == errors

"""Lane tests' shared pieces: instances of a dependency that say who answered, and the
governance.yaml that names them.

A governed service calls `http://service-x/who` (gRPC: `service-x:50051`); `services:` maps
`service-x` to a base and (maybe) a gray instance on loopback; the instance that answers says
its name, so a test sees where each call went, and what lane tag it carried.
"""

from __future__ import annotations

import http.server as http_server
import re

from service_support import LoopbackServer, free_port

SERVICE = "service-x"
TAGGED = {"x-mse-tag": "gray"}  # sent by an upstream governed service
MATCHING = {"x-user": "7"}  # matches the gray lane: this service is the first governed hop
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

"""Lane tests' shared pieces: instances of a dependency that say who answered, and the
governance.yaml that names them.

A governed service calls `http://service-x/who` (gRPC: `service-x:50051`); `services:` maps
`service-x` to a base and (maybe) a gray instance on loopback; the instance that answers says
its name, so a test sees where each call went, and what lane tag it carried.
"""

from __future__ import annotations

import http.server as http_server
import re
import threading

from service_support import free_port

SERVICE = "service-x"
TAGGED = {"x-mse-tag": "gray"}  # sent by an upstream governed service
MATCHING = {"x-user": "7"}  # matches the gray lane: this service is the first governed hop
FALLBACK = f'instpy_lane_fallback_total{{lane="gray",service="{SERVICE}"}}'
ROUTED = f'instpy_lane_routed_total{{lane="gray",service="{SERVICE}"}}'


class Instance:
    """One instance of service-x on loopback: answers every GET with its name; counts the calls
    it got and remembers the lane tags they carried."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        self.tags: list[str | None] = []
        owner = self

        class Handler(http_server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                owner.tags.append(self.headers.get("x-mse-tag"))
                body = owner.name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.address = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Instance:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


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

"""The report endpoint discovery hands back: endpoints, warnings, and their JSON form."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

ANY_METHOD = "*"
GRPC_METHOD = "GRPC"
HTTP_VERBS = ("get", "post", "put", "delete", "patch", "head", "options", "trace")


@dataclass(frozen=True, order=True)
class Endpoint:
    """One endpoint. `method` is an HTTP verb, `*` (any: Django, aiohttp `*`) or `GRPC`;
    `path` is the route template (prefixes applied) or the gRPC name `/package.Service/Method`.
    """

    file: str  # relative to the scanned root, '/'-separated
    line: int
    framework: str  # flask | fastapi | starlette | aiohttp | django | grpc
    method: str
    path: str
    handler: str  # the view as written (`views.index`, `Greeter.SayHello`); "" when not a name

    @property
    def resource(self) -> str:
        """The runtime's resource name (docs/architecture.md): `METHOD template` or gRPC name."""
        return self.path if self.framework == "grpc" else f"{self.method} {self.path}"


@dataclass(frozen=True, order=True)
class ScanWarning:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class EndpointReport:
    endpoints: tuple[Endpoint, ...]
    warnings: tuple[ScanWarning, ...]

    def to_dict(self) -> dict[str, list[dict[str, object]]]:
        return {
            "endpoints": [asdict(e) for e in self.endpoints],
            "warnings": [asdict(w) for w in self.warnings],
        }

    def to_json(self) -> str:
        """Deterministic JSON: sorted entries, sorted keys, trailing newline."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

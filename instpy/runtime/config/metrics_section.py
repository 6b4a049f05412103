"""`metrics:` — the Prometheus listener and which resources keep statistics."""

from __future__ import annotations

from dataclasses import dataclass

from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node
from instpy.runtime.config.section import Section

KEYS = ("port", "inbound", "all_resources")


@dataclass(frozen=True)
class MetricsSettings:
    """`port`: serve /metrics on 127.0.0.1:port (None: no listener; INSTPY_METRICS_PORT wins).
    `inbound`: keep statistics for every inbound endpoint (route templates and gRPC methods are
    a bounded set, and per-endpoint metrics are what operators look at first).
    `all_resources`: keep statistics for every resource the hooks enter, outbound and method
    ones too, not only governed ones (outbound URLs can be unbounded; capped)."""

    port: int | None = None
    inbound: bool = True
    all_resources: bool = False


def parse(node: Node) -> MetricsSettings:
    fields = v.mapping(node, KEYS, "metrics")
    port = v.integer(fields["port"], minimum=1, maximum=65535) if "port" in fields else None
    inbound = v.boolean(fields["inbound"]) if "inbound" in fields else True
    all_resources = v.boolean(fields["all_resources"]) if "all_resources" in fields else False
    return MetricsSettings(port, inbound, all_resources)


SECTION: Section[MetricsSettings] = Section(
    "metrics", parse, MetricsSettings(), "the /metrics listener and statistics coverage")

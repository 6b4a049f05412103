"""`metrics:` — the Prometheus listener and which resources keep statistics."""

from __future__ import annotations

from dataclasses import dataclass

from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node
from instpy.runtime.config.section import Section

KEYS = ("port", "all_resources")


@dataclass(frozen=True)
class MetricsSettings:
    """`port`: serve /metrics on 127.0.0.1:port (None: no listener; INSTPY_METRICS_PORT wins).
    `all_resources`: keep statistics for every resource the hooks enter, not only governed
    ones (costs a few hundred ns per call on otherwise idle resources)."""

    port: int | None = None
    all_resources: bool = False


def parse(node: Node) -> MetricsSettings:
    fields = v.mapping(node, KEYS, "metrics")
    port = v.integer(fields["port"], minimum=1, maximum=65535) if "port" in fields else None
    all_resources = v.boolean(fields["all_resources"]) if "all_resources" in fields else False
    return MetricsSettings(port, all_resources)


SECTION: Section[MetricsSettings] = Section(
    "metrics", parse, MetricsSettings(), "the /metrics listener and statistics coverage")

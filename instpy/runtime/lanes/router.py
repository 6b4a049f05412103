"""Where an outbound call to a named service goes: an instance of the request's lane, else base.

`http://service-c/greet1c` with `services: {service-c: {base: [...], gray: [...]}}` becomes
`http://127.0.0.1:8113/greet1c` for a gray request and a base address otherwise, round robin.
A URL whose host no `services:` entry names is left alone (DNS and the platform route it).
"""

from __future__ import annotations

import itertools
import threading
from urllib.parse import urlsplit, urlunsplit

from instpy.runtime.lanes.rule import ServiceTable
from instpy.runtime.lanes.stats import LANE_STATS

_rr: dict[tuple[str, str], itertools.count[int]] = {}
_rr_lock = threading.Lock()


def _pick(service: str, tag: str, addresses: tuple[str, ...]) -> str:
    key = (service, tag)
    counter = _rr.get(key)
    if counter is None:
        with _rr_lock:
            counter = _rr.setdefault(key, itertools.count())
    return addresses[next(counter) % len(addresses)]


def _host(netloc: str) -> str:
    return netloc.rsplit("@", 1)[-1].split(":", 1)[0]


def route_url(url: str, tag: str | None, table: ServiceTable, lane: str | None = None) -> str:
    """The URL to call for a request tagged `tag` (None: base)."""
    if not table.services:
        return url
    parts = urlsplit(url)
    service = table.services.get(_host(parts.netloc))
    if service is None:
        return url
    if tag is not None:
        lane_instances = service.instances.get(tag, ())
        if lane_instances:
            LANE_STATS.count("instpy_lane_routed_total", lane or tag, service.name)
            return urlunsplit(parts._replace(netloc=_pick(service.name, tag, lane_instances)))
        LANE_STATS.count("instpy_lane_fallback_total", lane or tag, service.name)
    if not service.base:
        return url
    return urlunsplit(parts._replace(netloc=_pick(service.name, "base", service.base)))


def base_url_for(url: str, table: ServiceTable, lane: str) -> str | None:
    """For a call that went to a lane instance and could not connect: the same call on a base
    instance (the request never reached the lane instance, so retrying is safe); else None."""
    parts = urlsplit(url)
    service_name = table.lane_instances.get(parts.netloc)
    if service_name is None:
        return None
    service = table.services[service_name]
    if not service.base:
        return None
    LANE_STATS.count("instpy_lane_fallback_total", lane, service_name)
    return urlunsplit(parts._replace(netloc=_pick(service_name, "base", service.base)))

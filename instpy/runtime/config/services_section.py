"""`services:` — the instances of each destination service, by tag (`base` for untagged)."""

from __future__ import annotations

import re

from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node
from instpy.runtime.config.section import Section
from instpy.runtime.lanes.rule import Service, ServiceTable

_ADDRESS = re.compile(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}\Z")


def parse(node: Node) -> ServiceTable:
    if not isinstance(node.value, dict):
        raise node.error("services must be a mapping of service name to instances",
                         'write e.g. service-b: {base: ["127.0.0.1:8102"]}')
    services: dict[str, Service] = {}
    for name, entry in node.value.items():
        if not isinstance(entry.value, dict) or not entry.value:
            raise entry.error(f"service {name!r} must map tags to instance lists",
                              'write e.g. {base: ["10.0.0.5:8080"], gray: ["10.0.0.9:8080"]}')
        instances: dict[str, tuple[str, ...]] = {}
        for tag, addresses_node in entry.value.items():
            addresses = tuple(_address(a) for a in v.sequence(addresses_node, f"{name}.{tag}"))
            instances[tag] = addresses
        services[name.lower()] = Service(name.lower(), instances)
    return ServiceTable.build(services)


def _address(node: Node) -> str:
    text = v.string(node)
    if _ADDRESS.match(text) is None:
        raise node.error(f"instance {text!r} is not host:port",
                         'write it like "127.0.0.1:8103" or "10.0.0.5:8080"')
    return text


SECTION: Section[ServiceTable] = Section(
    "services", parse, ServiceTable(), "services: instances of each destination, by tag")

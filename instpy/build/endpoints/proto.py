"""gRPC services declared in `.proto` files: the fallback source of a service's package."""

from __future__ import annotations

import re
from pathlib import Path

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_PACKAGE = re.compile(r"\bpackage\s+([\w.]+)\s*;")
_SERVICE = re.compile(r"\bservice\s+(\w+)\s*\{")
_RPC = re.compile(r"\brpc\s+(\w+)\s*\(")


def read_services(path: Path) -> dict[str, tuple[str, set[str]]]:
    """Service name -> (package, RPC names) for one `.proto`; empty when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    text = _COMMENT.sub("", text)
    pkg_match = _PACKAGE.search(text)
    package = pkg_match.group(1) if pkg_match else ""
    services: dict[str, tuple[str, set[str]]] = {}
    for match in _SERVICE.finditer(text):
        # The service body ends at its matching brace: RPC options nest braces of their own.
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        rpcs = set(_RPC.findall(text[match.end() : i]))
        services.setdefault(match.group(1), (package, rpcs))
    return services

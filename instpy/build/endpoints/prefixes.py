"""Full paths: each route under every prefix the chain of containers above it adds."""

from __future__ import annotations

from instpy.build.endpoints.model import Endpoint
from instpy.build.endpoints.scan import MAX_DEPTH, Edge, Scan


def endpoints(scan: Scan) -> set[Endpoint]:
    incoming: dict[str, list[Edge]] = {}
    for e in scan.edges:
        if e not in incoming.setdefault(e.child, []):
            incoming[e.child].append(e)
    found: set[Endpoint] = set()
    for r in scan.routes:
        for prefix in _prefixes(scan, incoming, r.container, 0):
            if r.framework == "django":
                path = "/" + prefix + r.path
            elif r.framework == "grpc":
                path = r.path
            else:
                path = _join(r.framework, prefix, r.path)
            found.add(Endpoint(r.file, r.line, r.framework, r.method, path, r.handler))
    return found


def _prefixes(scan: Scan, incoming: dict[str, list[Edge]], cid: str, depth: int) -> list[str]:
    c = scan.containers[cid]
    edges = incoming.get(cid, [])
    if not edges or depth > MAX_DEPTH:
        return [c.own_prefix]
    out: list[str] = []
    for e in edges:
        for base in _prefixes(scan, incoming, e.parent, depth + 1):
            if c.framework == "flask":
                # register_blueprint(url_prefix=...) replaces the Blueprint's own prefix.
                mid = e.prefix if e.prefix is not None else c.own_prefix
                full = _join("flask", base, mid)
            else:
                full = _join(c.framework, base, (e.prefix or "") + c.own_prefix)
            if full not in out:
                out.append(full)
    return out


def _join(framework: str, prefix: str, path: str) -> str:
    if framework == "flask":
        # Flask joins url_prefix and rule with exactly one slash (Blueprint.add_url_rule).
        if not prefix:
            return path
        return prefix.rstrip("/") + "/" + path.lstrip("/") if path else prefix
    if prefix.endswith("/") and path.startswith("/"):
        return prefix[:-1] + path
    return prefix + path

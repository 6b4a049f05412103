"""Discover a service's HTTP and gRPC endpoints from its own source, without running it.

Parses with the standard library's `ast`, not LibCST: we only read, never rewrite, so a concrete
syntax tree buys nothing, while `ast` (the C parser) is an order of magnitude faster and gives line
numbers directly. Nothing of the service is imported or executed.

What is recognised (names are resolved through each module's imports, so `os.path` is never a
Django `path` and a decorator counts only on an object the framework created):

* Flask: `@app.route/get/post/...`, `methods=[...]`, `add_url_rule`, Blueprints with
  `url_prefix` in the constructor or in `register_blueprint` (which overrides it, as in Flask).
* FastAPI: `@app.get/...`, `@router.post/...`, `api_route`, `add_api_route`, `APIRouter(prefix=)`,
  `include_router(prefix=)`.
* Starlette: `Route(...)` in `routes=[...]` (inline or a list variable),
  `Mount(path, routes=|app=)`, `app.add_route`, `app.mount`; an `HTTPEndpoint` class answers
  the verbs it defines or inherits from a class in the tree.
* aiohttp: `web.get(...)` and friends in `add_routes([...])`, `app.router.add_get/add_route/...`,
  `@routes.get(...)` on a `RouteTableDef`, `add_subapp(prefix, app)`; class-based views
  (`@routes.view` on a `web.View` subclass, `add_view`, `web.view`) as one endpoint per method
  the class defines or inherits from a class in the tree.
* Django: `urlpatterns` with `path()`, `re_path()`, `url()`, `include()` of a module in the tree.
* gRPC: classes subclassing `<Service>Servicer` from a `*_pb2_grpc` module; the package comes
  from that module's generated method paths or from a `.proto` file in the tree.

Containers (apps, routers, blueprints, route lists) and the edges between them (include, mount,
register) are collected for the whole tree first, so prefixes applied in another module are seen.
Anything that cannot be resolved statically becomes a warning with `path:line` and is skipped.
"""

from __future__ import annotations

from pathlib import Path

from instpy.build.endpoints import aiohttp, django, flask_fastapi, grpc, starlette
from instpy.build.endpoints.model import Endpoint, EndpointReport, ScanWarning
from instpy.build.endpoints.prefixes import endpoints
from instpy.build.endpoints.scan import Scan
from instpy.build.endpoints.walk import Recognisers, Walk

__all__ = ["Endpoint", "EndpointReport", "ScanWarning", "discover_endpoints"]

# One table for every framework family; a new framework is a new module and a line here.
_RECOGNISERS = Recognisers.merge(
    flask_fastapi.FAMILY, starlette.FAMILY, aiohttp.FAMILY, django.FAMILY, grpc.FAMILY
)


def discover_endpoints(root: str | Path) -> EndpointReport:
    """Scan every `.py` (and `.proto`) file under `root` and list its HTTP and gRPC endpoints.

    Skips hidden folders, virtualenvs, `site-packages`, `build`/`dist` and caches. Never imports
    or runs the service. Deterministic: the same tree gives the same report.
    """
    scan = Scan(Path(root))
    scan.load()
    walk = Walk(scan, _RECOGNISERS)
    walk.containers()
    walk.routes()
    return EndpointReport(tuple(sorted(endpoints(scan))), tuple(sorted(set(scan.warnings))))

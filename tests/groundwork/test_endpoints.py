"""Endpoint discovery over real-looking services (fixtures/services) and edge cases."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from instpy.build.endpoints import Endpoint, EndpointReport, discover_endpoints

SERVICES = Path(__file__).resolve().parents[2] / "fixtures" / "services"


def _table(report: EndpointReport) -> set[tuple[str, str, str]]:
    return {(e.framework, e.method, e.path) for e in report.endpoints}


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_flask_app() -> None:
    report = discover_endpoints(SERVICES / "flask_app")
    assert _table(report) == {
        ("flask", "GET", "/greet1a"),
        ("flask", "GET", "/greet1b"),  # path from a module constant
        ("flask", "GET", "/users/<int:user_id>"),
        ("flask", "DELETE", "/users/<int:user_id>"),
        ("flask", "GET", "/healthz"),  # add_url_rule
        # register_blueprint(url_prefix=) replaces the Blueprint's own "/orders", as in Flask
        ("flask", "POST", "/api/orders/"),
        ("flask", "GET", "/api/orders/<order_id>"),
        ("flask", "PUT", "/api/orders/<order_id>"),
    }
    first = report.endpoints[0]
    assert (first.file, first.line, first.handler) == ("app.py", 13, "greet1a")
    assert first.resource == "GET /greet1a"
    assert [str(w) for w in report.warnings] == [
        "shop/orders.py:20: route path is not a string literal or module constant; skipped"
    ]


def test_fastapi_app() -> None:
    report = discover_endpoints(SERVICES / "fastapi_app")
    assert _table(report) == {
        ("fastapi", "GET", "/health"),
        ("fastapi", "GET", "/echo"),
        ("fastapi", "POST", "/echo"),
        ("fastapi", "GET", "/v1/items/"),  # include prefix + router prefix
        ("fastapi", "GET", "/v1/items/{item_id}"),
        ("fastapi", "PUT", "/v1/items/{item_id}"),
        ("fastapi", "GET", "/users/me"),  # add_api_route on `fastapi.APIRouter()`
        ("fastapi", "DELETE", "/users/{user_id}"),
    }
    assert report.warnings == ()  # the websocket route is not an HTTP endpoint, not a problem


def test_starlette_app() -> None:
    report = discover_endpoints(SERVICES / "starlette_app")
    assert _table(report) == {
        ("starlette", "GET", "/"),
        ("starlette", "GET", "/login"),
        ("starlette", "POST", "/login"),
        ("starlette", "GET", "/api/users/{user_id:int}"),
        ("starlette", "GET", "/api/articles"),  # HTTPEndpoint: the verbs it defines
        ("starlette", "POST", "/api/articles"),
        ("starlette", "GET", "/admin/stats"),
    }


def test_aiohttp_app() -> None:
    report = discover_endpoints(SERVICES / "aiohttp_app")
    assert _table(report) == {
        ("aiohttp", "GET", "/"),
        ("aiohttp", "POST", "/upload"),
        ("aiohttp", "GET", "/status"),
        ("aiohttp", "PUT", "/items/{id}"),
        ("aiohttp", "GET", "/healthz"),
        ("aiohttp", "DELETE", "/items/{id}"),
        ("aiohttp", "GET", "/admin/stats"),  # add_subapp prefix
        ("aiohttp", "*", "/admin/any"),
    }


def test_django_project() -> None:
    report = discover_endpoints(SERVICES / "django_project")
    assert _table(report) == {
        ("django", "*", "/"),
        ("django", "*", "/polls/"),
        ("django", "*", "/polls/<int:question_id>/"),
        ("django", "*", "/polls/<int:question_id>/vote/"),
        ("django", "*", "/archive/(?P<year>[0-9]{4})/$"),
        ("django", "*", "/about/"),  # urlpatterns += [...]
    }
    assert [w.line for w in report.warnings] == [12]  # admin.site.urls
    assert "admin.site.urls" in report.warnings[0].message


def test_grpc_service() -> None:
    report = discover_endpoints(SERVICES / "grpc_service")
    assert [(e.path, e.handler) for e in report.endpoints] == [
        ("/helloworld.Greeter/SayHello", "Greeter.SayHello"),  # package from _pb2_grpc
        ("/helloworld.Greeter/SayHelloStream", "Greeter.SayHelloStream"),
        ("/routeguide.RouteGuide/GetFeature", "RouteGuide.GetFeature"),  # package from .proto
    ]
    assert all(e.resource == e.path and e.method == "GRPC" for e in report.endpoints)


def test_json_is_deterministic_and_complete() -> None:
    one = discover_endpoints(SERVICES / "flask_app").to_json()
    two = discover_endpoints(SERVICES / "flask_app").to_json()
    assert one == two
    data = json.loads(one)
    assert set(data) == {"endpoints", "warnings"}
    assert set(data["endpoints"][0]) == {"file", "line", "framework", "method", "path", "handler"}
    assert (
        Endpoint(**data["endpoints"][0]) == discover_endpoints(SERVICES / "flask_app").endpoints[0]
    )


def test_never_executes_code_and_reports_syntax_errors(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "app.py": """
                import flask
                raise SystemExit("executed!")
                app = flask.Flask(__name__)

                @app.post("/x")
                def x(): ...
            """,
            "broken.py": "def (:\n",
        },
    )
    report = discover_endpoints(root)
    assert _table(report) == {("flask", "POST", "/x")}
    assert [str(w).split(":")[:2] for w in report.warnings] == [["broken.py", "1"]]


def test_dynamic_cases_warn_with_location(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "svc.py": """
                from fastapi import FastAPI
                from flask import Flask
                from somewhere import make_app, router

                app = FastAPI()
                other = make_app()
                fl = Flask(__name__)
                verbs = ["GET"]

                @other.get("/unknown")
                def a(): ...

                @fl.route("/m", methods=verbs)
                def b(): ...

                app.include_router(router)
            """,
        },
    )
    report = discover_endpoints(root)
    assert report.endpoints == ()
    messages = {(w.line, w.message.split(":")[0]) for w in report.warnings}
    assert messages == {
        (11, "route decorator @other.get(...)"),
        (14, "route methods are not a literal list of strings; skipped"),
        (
            17,
            "the blueprint or router being registered cannot be resolved statically; "
            "its routes keep their own prefix",
        ),
    }


def test_lookalikes_are_not_endpoints(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "tool.py": """
                import os
                from os.path import join as path
                import requests

                urlpatterns = [path("a", "b")]

                class Client:
                    def get(self, url): ...

                c = Client()

                @c.get("/not-a-route")
                def f(): ...

                requests.get("/also-not")
            """,
        },
    )
    report = discover_endpoints(root)
    assert report.endpoints == ()
    assert report.warnings == ()  # no web framework imported: nothing to warn about either


def test_factory_aliases_and_src_layout(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "src/svc/__init__.py": "",
            "src/svc/api.py": """
                from flask import Blueprint
                bp = Blueprint("api", __name__)
                inner = Blueprint("inner", __name__, url_prefix="/inner")

                @inner.get("/leaf")
                def leaf(): ...

                bp.register_blueprint(inner)

                @bp.route("/ping", methods=["POST"])
                def ping(): ...
            """,
            "src/svc/factory.py": """
                import flask
                from svc.api import bp

                def create_app():
                    app = flask.Flask(__name__)
                    app.register_blueprint(bp, url_prefix="/v2")
                    return app
            """,
            "src/svc/aio.py": """
                from aiohttp import web
                app = web.Application()
                router = app.router
                router.add_post("/hook", lambda r: None)
                router.add_view("/things", object)
            """,
            ".venv/lib/site.py": "from flask import Flask\nFlask(__name__).route('/x')\n",
        },
    )
    report = discover_endpoints(root)
    assert _table(report) == {
        ("flask", "GET", "/v2/inner/leaf"),
        ("flask", "POST", "/v2/ping"),
        ("aiohttp", "POST", "/hook"),
        ("aiohttp", "*", "/things"),
    }
    assert {e.handler for e in report.endpoints if e.framework == "aiohttp"} == {"", "object"}


@pytest.mark.parametrize("layout", ["pb2_missing", "class_in_package"])
def test_grpc_without_package_information(tmp_path: Path, layout: str) -> None:
    source = """
        from api.v1 import shop_pb2_grpc

        class Shop(shop_pb2_grpc.ShopServicer):
            async def Buy(self, request, context): ...
            def _helper(self): ...
    """
    root = _write(tmp_path, {"server.py": source})
    report = discover_endpoints(root)
    assert _table(report) == {("grpc", "GRPC", "/Shop/Buy")}
    assert "package of gRPC service 'Shop' unknown" in report.warnings[0].message


def test_empty_tree(tmp_path: Path) -> None:
    report = discover_endpoints(tmp_path)
    assert report == EndpointReport((), ())
    assert json.loads(report.to_json()) == {"endpoints": [], "warnings": []}


def test_starlette_mounts_routers_and_methods(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "app.py": """
                from starlette.applications import Starlette
                from starlette.endpoints import HTTPEndpoint
                from starlette.routing import Host, Mount, Route, Router, WebSocketRoute

                class Things(HTTPEndpoint):
                    async def delete(self, request): ...
                    def helper(self): ...

                class Bare(HTTPEndpoint):
                    pass

                async def home(request): ...

                inner = Router(routes=[Route("/in", home)])
                routes = [
                    Route("/things", Things),
                    Route("/bare", Bare),
                    Mount("/inner", app=inner),
                    Mount("/built", app=Starlette(routes=[Route("/b", home)])),
                    Mount("/a", routes=[Mount("/b/", routes=[Route("/c", home)])]),
                    Mount("/gone", app=make()),
                    WebSocketRoute("/ws", home),
                    Host("h.example", app=inner),
                ]
                app = Starlette(routes=routes)
                app.add_route("/added", home, methods=["post"])
                app.mount("/again", inner)

                @app.route("/decorated", methods=["GET", "PUT"])
                async def decorated(request): ...
            """,
            "factory.py": """
                from starlette.applications import Starlette
                from starlette.routing import Mount, Route

                def create():
                    return Starlette(routes=[Mount("/f", routes=[Route("/g", None)])])
            """,
        },
    )
    report = discover_endpoints(root)
    assert _table(report) == {
        ("starlette", "DELETE", "/things"),  # an HTTPEndpoint answers the verbs it defines
        ("starlette", "*", "/bare"),  # ... or any method when it defines none
        ("starlette", "GET", "/inner/in"),
        ("starlette", "GET", "/again/in"),
        ("starlette", "GET", "/built/b"),
        ("starlette", "GET", "/a/b/c"),  # one slash where a prefix ends and a path starts
        ("starlette", "POST", "/added"),
        ("starlette", "GET", "/decorated"),
        ("starlette", "PUT", "/decorated"),
        ("starlette", "GET", "/f/g"),  # found in no named list: kept, without a prefix
    }
    assert [(w.line, w.message) for w in report.warnings] == [
        (22, "mounted app 'make()' cannot be resolved statically; skipped")
    ]


def test_aiohttp_every_route_form(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "server.py": """
                from aiohttp import web, web_routedef

                routes = web.RouteTableDef()

                @routes.route("patch", "/decorated-route")
                async def patched(request): ...

                @routes.view("/decorated-view")
                async def viewed(request): ...

                defs = [web.view("/v", View), web_routedef.route("get", "/r", handle)]

                def make(prefix):
                    admin = web.Application()
                    admin.add_routes(defs)
                    app = web.Application()
                    app.add_routes(routes)
                    app.router.add_route(method="put", path="/kw", handler=handle)
                    app.router.add_options("/opt", handle)
                    app.add_subapp("/admin", admin)
                    app.add_subapp(prefix, admin)
                    return app
            """,
        },
    )
    report = discover_endpoints(root)
    assert _table(report) == {
        ("aiohttp", "PATCH", "/decorated-route"),  # upper-cased, as aiohttp does
        ("aiohttp", "*", "/decorated-view"),
        ("aiohttp", "*", "/admin/v"),
        ("aiohttp", "GET", "/admin/r"),
        ("aiohttp", "PUT", "/kw"),
        ("aiohttp", "OPTIONS", "/opt"),
    }
    assert {e.handler for e in report.endpoints} == {"patched", "viewed", "View", "handle"}
    assert [(w.line, w.message) for w in report.warnings] == [
        (22, "add_subapp() prefix is not a string literal; skipped")
    ]


def test_aiohttp_class_based_views(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "shop/views.py": """
                from aiohttp import web

                class Readable(web.View):
                    async def get(self): ...
                    head = get  # an alias is an attribute all the same

                class Item(Readable):
                    async def delete(self): ...
                    async def helper(self): ...
            """,
            "shop/app.py": """
                from aiohttp import web
                from shop import views
                from shop.views import Item

                routes = web.RouteTableDef()

                @routes.view("/items")
                class Items(web.View):
                    async def get(self): ...
                    async def post(self): ...
                    def trace(self): ...  # not a method aiohttp's View dispatches here

                class Empty(web.View):
                    pass

                async def anything(request): ...

                def make():
                    app = web.Application()
                    app.add_routes(routes)
                    app.router.add_view("/items/{id}", Item)
                    app.add_routes([web.view("/empty", Empty), web.view("/plain", anything)])
                    app.router.add_route("*", "/readable", views.Readable)
                    return app
            """,
        },
    )
    report = discover_endpoints(root)
    assert _table(report) == {
        # one endpoint per method the view defines, as the runtime names its requests
        ("aiohttp", "GET", "/items"),
        ("aiohttp", "POST", "/items"),
        ("aiohttp", "DELETE", "/items/{id}"),  # imported, with what it inherits
        ("aiohttp", "GET", "/items/{id}"),
        ("aiohttp", "HEAD", "/items/{id}"),
        ("aiohttp", "GET", "/readable"),  # a `*` route to a view: the same
        ("aiohttp", "HEAD", "/readable"),
        ("aiohttp", "*", "/plain"),  # a function answers any method
    }  # a view with no method of its own (Empty) is no endpoint
    assert {(e.method, e.line, e.handler) for e in report.endpoints if e.path == "/items"} == {
        ("GET", 8, "Items"), ("POST", 8, "Items")
    }
    assert report.warnings == ()
    assert {e.resource for e in report.endpoints if e.path == "/items/{id}"} == {
        "DELETE /items/{id}", "GET /items/{id}", "HEAD /items/{id}"
    }


def test_starlette_endpoint_classes_imported_and_inherited(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "views.py": """
                from starlette.endpoints import HTTPEndpoint

                class Base(HTTPEndpoint):
                    async def get(self, request): ...

                class Things(Base):
                    async def put(self, request): ...
            """,
            "app.py": """
                from starlette.applications import Starlette
                from starlette.routing import Route
                from views import Things

                app = Starlette(routes=[Route("/things", Things)])
            """,
        },
    )
    assert _table(discover_endpoints(root)) == {
        ("starlette", "GET", "/things"),
        ("starlette", "PUT", "/things"),
    }


def test_django_includes_of_every_kind(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "site/__init__.py": "",
            "site/urls.py": """
                from django.conf.urls import url
                from django.urls import include, path, re_path
                from polls import urls as polls_urls

                local = [path("l/", views.l)]
                urlpatterns = [
                    path("a/", include("polls.urls")),
                    path("b/", include(polls_urls)),
                    path("c/", include(("polls.urls", "polls"))),
                    path("d/", include([path("x/", views.x)])),
                    path("e/", include(([path("y/", views.y)], "ns"))),
                    path("f/", include(local)),
                    re_path(r"^g/", include("polls.urls")),
                    url(r"^old/$", views.old),
                    path("h/", include("missing.urls")),
                ]
            """,
            "polls/__init__.py": "",
            "polls/urls.py": """
                from django.urls import path

                urlpatterns = []
                urlpatterns += [path("<int:q>/", views.detail)]
            """,
        },
    )
    report = discover_endpoints(root)
    paths = {e.path for e in report.endpoints if e.file == "site/urls.py"}
    assert paths == {"/d/x/", "/e/y/", "/f/l/", "/old/$"}  # a list included is only under it
    detail = {e.path for e in report.endpoints if e.file == "polls/urls.py"}
    assert detail == {"/a/<int:q>/", "/b/<int:q>/", "/c/<int:q>/", "/g/<int:q>/"}
    assert {e.method for e in report.endpoints} == {"*"}
    assert [(w.line, w.message.split(":")[0]) for w in report.warnings] == [
        (16, "include('missing.urls')")
    ]


def test_registration_prefixes(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "api.py": """
                from fastapi import APIRouter, FastAPI
                from flask import Blueprint, Flask

                app = FastAPI()
                items = APIRouter(prefix="/items")
                loose = APIRouter(prefix=PREFIX)

                @items.api_route("/x", methods=["get", "POST"])
                def x(): ...

                @loose.get("/y")
                def y(): ...

                @app.router.get("/z")
                def z(): ...

                app.include_router(items, prefix="/v1")
                app.include_router(loose, prefix=make())

                fl = Flask(__name__)
                outer = Blueprint("outer", __name__, url_prefix="/outer")
                inner = Blueprint("inner", __name__, url_prefix="/inner")

                @inner.route("")
                def leaf(): ...

                outer.register_blueprint(inner, url_prefix="/in/")
                fl.register_blueprint(outer)
                fl.register_blueprint(inner, url_prefix=other())
            """,
        },
    )
    report = discover_endpoints(root)
    assert _table(report) == {
        ("fastapi", "GET", "/v1/items/x"),  # include_router's prefix before the router's
        ("fastapi", "POST", "/v1/items/x"),
        ("fastapi", "GET", "/y"),  # its prefix unreadable, both times: ignored
        ("fastapi", "GET", "/z"),
        ("flask", "GET", "/inner"),  # unregistered, and registered with an unreadable prefix
        ("flask", "GET", "/outer/in/"),  # url_prefix= at registration replaces /inner
    }
    assert [(w.line, w.message) for w in report.warnings] == [
        (7, "prefix= is not a string literal; ignored"),
        (19, "prefix= is not a string literal; prefix ignored"),
        (30, "url_prefix= is not a string literal; prefix ignored"),
    ]


def test_proto_comments_nested_braces_and_unreadable_files(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "protos/shop.proto": """
                package shop.v1; // service Fake {
                /* service Hidden { rpc Nope(A) returns (B); } */
                service Shop {
                  rpc Buy(Order) returns (Receipt) { option (x) = { a: 1 }; }
                  rpc Refund(Receipt) returns (Empty);
                }
            """,
            "server.py": """
                from api import shop_pb2_grpc

                class Shop(shop_pb2_grpc.ShopServicer):
                    def Buy(self, request, context): ...
                    def Refund(self, request, context): ...
                    def Audit(self): ...
            """,
            "folder.py/__init__.py": "",
        },
    )
    report = discover_endpoints(root)
    assert _table(report) == {
        ("grpc", "GRPC", "/shop.v1.Shop/Buy"),  # only the .proto's RPCs: Audit is a helper
        ("grpc", "GRPC", "/shop.v1.Shop/Refund"),
    }
    assert [(w.file, w.message.split(":")[0]) for w in report.warnings] == [
        ("folder.py", "cannot read")
    ]


def test_two_families_cannot_claim_one_form() -> None:
    from instpy.build.endpoints.walk import Recognisers

    flask_like = Recognisers(route_lists={"urlpatterns": "flask"})
    with pytest.raises(ValueError, match="'urlpatterns' is claimed twice"):
        Recognisers.merge(Recognisers(route_lists={"urlpatterns": "django"}), flask_like)

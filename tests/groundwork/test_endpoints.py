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

"""Flask inbound governance (Flask >=2.2,<4).

Choke point: `flask.app:Flask.full_dispatch_request`. Every request that Flask routes passes it
exactly once, after routing (`request.url_rule` carries the route template, so the resource is
`GET /users/<int:id>` and not one resource per user), before `before_request` functions (a
blocked request costs the service nothing more), and what it returns is the response (so a
skipped call answers the request). `wsgi_app` runs before routing; `dispatch_request` runs after
the before-request functions.
"""

from __future__ import annotations

from flask import Flask, request

from instpy.runtime.call import Call
from instpy.runtime.governance import Entry
from instpy.runtime.hooks.http import admit_inbound, finish

DISTRIBUTION = "flask"
VERSIONS = ">=2.2,<4"


def _lookup(source: str, name: str) -> object:
    if source == "query":
        return request.args.get(name)
    if source == "header":
        return request.headers.get(name)
    if source == "cookie":
        return request.cookies.get(name)
    if source == "path":
        return (request.view_args or {}).get(name)
    return None


def on_enter(call: Call) -> None:
    rule = request.url_rule
    if rule is None:
        return  # routing failed: Flask answers 404/405 itself, there is no endpoint to govern
    outcome = admit_inbound(f"{request.method} {rule.rule}", _lookup, request.headers.get)
    if isinstance(outcome, Entry):
        call.data["entry"] = outcome
        return
    app: Flask = call.params["self"]
    call.skip(app.response_class(outcome.body, status=outcome.status,
                                 headers=outcome.response_headers()))


def on_exit(call: Call) -> None:
    response = call.return_value
    finish(call.data.get("entry"), call.exception, getattr(response, "status_code", None))

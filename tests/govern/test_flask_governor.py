"""Flask's `full_dispatch_request` governor, in process on the governed build of Flask.

From its second call on, a governed Flask app's request dispatch runs without the generic hook
dispatch (instpy/runtime/hooks/flask.py `_Governor`). Each probe drives an app of its own with
Flask's test client (the real WSGI path), in a process of its own on the governed tree, and
checks what the governor must keep of the hooks: the first call (through the dispatch) and later
ones counted alike, how a request ended (a 5xx answer or an exception is the endpoint's failure,
a 4xx is not), a blocked request answered with its fallback without running the view, fail open,
and the same answers with governance on and off.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from governor_support import run_probe
from service_support import REPO, build_tree

pytest_plugins = ["fixture_support"]  # key

APP = """\
import json
from flask import Flask, abort

app = Flask("probe")
ran = []

@app.get("/ok")
def ok():
    ran.append("ok")
    return "ok"

@app.get("/answer/<int:code>")
def answer(code):
    return "code", code

@app.get("/boom")
def boom():
    raise RuntimeError("boom")

@app.get("/missing")
def missing():
    abort(404)

client = app.test_client()

def get(path):
    reply = client.get(path)
    return [reply.status_code, reply.get_data(as_text=True)[:20]]

def governed():
    return governor("flask.app:Flask.full_dispatch_request")
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Path:
    return build_tree(REPO / "fixtures" / "flask_shop",
                      tmp_path_factory.mktemp("flask-governor") / "tree", key)


def test_first_and_later_calls_count_alike_and_how_each_ended(
        tree: Path, key: str, tmp_path: Path) -> None:
    out = run_probe(tree, key, tmp_path, "rules: []\n", APP + """
first = get("/ok")  # through the hook dispatch; it installs the governor
installed = governed()
later = [get("/ok") for _ in range(3)]
codes = [get(f"/answer/{c}")[0] for c in (200, 404, 500, 503)]
print(json.dumps({"first": first, "installed": installed, "later": later, "codes": codes,
                  "raised": get("/boom")[0], "missing": get("/missing")[0],
                  "ok": totals("GET /ok"), "answer": totals("GET /answer/<int:code>"),
                  "boom": totals("GET /boom"), "missing_totals": totals("GET /missing"),
                  "inflight": engine().statistics().stats("GET /ok").inflight}))
""")
    assert out["first"] == [200, "ok"] and out["later"] == [[200, "ok"]] * 3
    assert out["installed"] == "_Governor"
    assert out["codes"] == [200, 404, 500, 503]
    # the view's exception reached full_dispatch_request; Flask answers it 500 outside
    assert out["raised"] == 500 and out["missing"] == 404
    # passed, completed, errors: the first call exits like the others
    assert out["ok"] == [4, 4, 0] and out["inflight"] == 0
    assert out["answer"] == [4, 4, 2]  # the 500 and the 503, not the 404
    assert out["boom"] == [1, 1, 1]
    assert out["missing_totals"] == [1, 1, 0]  # abort(404) is the caller's fault


def test_blocked_requests_get_the_fallback_and_never_run(
        tree: Path, key: str, tmp_path: Path) -> None:
    rules = ('rules:\n  - resource: "GET /ok"\n    flow: {qps: 2}\n'
             '    fallback: {status: 503, body: busy}\n')
    out = run_probe(tree, key, tmp_path, rules, APP + """
replies = [get("/ok") for _ in range(6)]
print(json.dumps({"replies": replies, "ran": len(ran), "ok": totals("GET /ok"),
                  "installed": governed()}))
""")
    assert out["installed"] == "_Governor"
    assert out["replies"] == [[200, "ok"]] * 2 + [[503, "busy"]] * 4
    assert out["ran"] == 2 and out["ok"] == [2, 2, 0]


def test_a_failing_governor_fails_open_counted_and_logged_once(
        tree: Path, key: str, tmp_path: Path) -> None:
    rules = 'rules:\n  - resource: "GET /ok"\n    flow: {qps: 1000}\n'
    out = run_probe(tree, key, tmp_path, rules, APP + """
from instpy.runtime.hooks import http
get("/ok")
res = http.kept_inbound("GET", "/ok")

def broken(lookup):
    raise ValueError("broken enter")

res.enter = broken
replies = [get("/ok") for _ in range(3)]
print(json.dumps({"replies": replies, "ran": len(ran), "failures": injected.hook_failures(),
                  "installed": governed()}))
""")
    assert out["replies"] == [[200, "ok"]] * 3 and out["ran"] == 4
    assert out["failures"] == {"instpy.runtime.hooks.flask:on_enter": 3}
    assert out["installed"] == "_Governor"


def test_the_app_sees_exactly_what_it_would_ungoverned(
        tree: Path, key: str, tmp_path: Path) -> None:
    out = run_probe(tree, key, tmp_path, "rules: []\n", APP + """
(target,) = injected.targets("flask.app:Flask.full_dispatch_request")
paths = ["/ok", "/answer/201", "/answer/500", "/missing", "/boom", "/nowhere"]
on = [get(p) for p in paths]
target.active = False
off = [get(p) for p in paths]
print(json.dumps({"on": on, "off": off}))
""")
    on = out["on"]
    assert isinstance(on, list) and on == out["off"]
    assert [reply[0] for reply in on] == [200, 201, 500, 404, 500, 404]

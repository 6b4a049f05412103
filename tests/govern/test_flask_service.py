"""A plain Flask service governed by `instpy build --govern`, served for real and driven for real.

One build of fixtures/flask_shop (no governance code in it) per format; one server per serving
mode; each test writes the governance.yaml it needs and waits for it to take effect.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from service_support import (
    APPLIED,
    REJECTED,
    REPO,
    Dependency,
    build,
    instpy,
    mint_key,
    until,
    write_rules,
)
from web_support import (
    Server,
    breaker_opens_on_failures,
    concurrency_limit_holds,
    query_hot_parameter_holds,
    start,
)

pytest_plugins = ["fixture_support"]  # key, dependency, dead_url

SERVICE = REPO / "fixtures" / "flask_shop"
USER_RULES = SERVICE / "instpy-rules.yaml"


@dataclass
class Built:
    out: Path
    build_log: str


def _build(tmp: Path, key: str, fmt: str) -> Built:
    out = tmp / f"governed-{fmt}"
    return Built(out, build(SERVICE, out, key, "-r", str(USER_RULES), "--format", fmt))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, key: str) -> Built:
    return _build(tmp_path_factory.mktemp("tree"), key, "tree")


def _start(cmd: list[str], cwd: Path, pythonpath: str, key: str,
           tmp: Path) -> Iterator[Server]:
    with Dependency() as dep:
        yield from start(cmd, cwd, key, tmp, dep, "/greet2a", {"PYTHONPATH": pythonpath})


@pytest.fixture(scope="module")
def app(tree: Built, key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start([sys.executable, "app.py"], tree.out, str(tree.out), key,
                      tmp_path_factory.mktemp("app"))


# -- the build ------------------------------------------------------------------------------


def test_manifest_lists_targets_endpoints_and_license_binding(tree: Built) -> None:
    manifest = json.loads((tree.out / "instpy-manifest.json").read_text())
    fingerprints = {t["fingerprint"] for t in manifest["targets"]}
    assert fingerprints >= {
        "flask.app:Flask.full_dispatch_request",
        "requests.sessions:Session.send",
        "shop.orders:OrderService.create",
    }
    # only what the service uses: no framework it does not depend on is in the tree
    assert all(fp.split(".")[0] in {"flask", "requests", "urllib3", "shop"} for fp in fingerprints)
    endpoints = {(e["method"], e["path"]) for e in manifest["endpoints"]["endpoints"]}
    assert ("GET", "/greet1a") in endpoints and ("GET", "/users/<int:user_id>") in endpoints
    assert manifest["license"]["namespace"] == "shop"
    assert manifest["license"]["fingerprint"].startswith("sha256:")
    rewritten = {d["name"] for d in manifest["distributions"] if d["rewritten"]}
    assert rewritten >= {"flask", "requests"}


def test_key_is_absent_from_the_artifact_and_the_build_log(tree: Built, key: str) -> None:
    assert key not in tree.build_log
    needle = key.encode()
    for path in tree.out.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path


def test_mistyped_key_fails_the_build_without_echoing_it(tmp_path: Path, key: str) -> None:
    bad = key[:-3] + ("a" if key[-3] != "a" else "b") + key[-2:]
    done = instpy("build", str(SERVICE), "--govern", "-o", str(tmp_path / "out"),
                  env={"INSTPY_LICENSE_KEY": bad})
    assert done.returncode == 2
    assert "INSTPY_LICENSE_KEY" in done.stderr and "checksum" in done.stderr.lower()
    assert bad not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()


def test_missing_key_fails_the_build_with_how_to_fix(tmp_path: Path) -> None:
    done = instpy("build", str(SERVICE), "--govern", "-o", str(tmp_path / "out"),
                  env={"INSTPY_LICENSE_KEY": ""})
    assert done.returncode == 2
    assert "instpy license new" in done.stderr


def test_governed_tree_runs_without_the_build_side(tree: Built) -> None:
    assert not (tree.out / "instpy" / "build").exists()
    assert not (tree.out / "instpy" / "cli.py").exists()
    probe = (
        "import importlib.util as u, app, instpy.runtime.governance;"
        "assert u.find_spec('libcst') is None, 'libcst reachable';"
        "print(app.app.full_dispatch_request.__name__)"
    )
    done = subprocess.run([sys.executable, "-S", "-c", probe], cwd=tree.out, text=True,
                          capture_output=True, env={"PYTHONPATH": str(tree.out)}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "full_dispatch_request"


def test_a_wrong_runtime_key_turns_governance_off(tree: Built) -> None:
    other = mint_key("shop")
    probe = "import instpy.runtime.injected as i; print(i.GOVERNING)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=tree.out, text=True,
                          capture_output=True, check=False,
                          env={"PYTHONPATH": str(tree.out), "INSTPY_LICENSE_KEY": other})
    assert done.stdout.strip() == "False"
    assert "not the key this artifact was built with" in done.stderr
    assert other not in done.stderr


# -- the governed service -------------------------------------------------------------------


def test_qps_rule_answers_429_with_the_configured_body_while_others_pass(app: Server) -> None:
    app.rules(
        'rules:\n  - resource: "GET /greet1a"\n    flow: {qps: 1}\n'
        '    fallback: {status: 429, body: "too many requests to /greet1a", '
        "content_type: text/plain}\n",
        APPLIED,
    )
    replies = [app.get("/greet1a") for _ in range(5)]
    blocked = [r for r in replies if r.status == 429]
    assert 1 <= sum(r.status == 200 for r in replies) <= 2
    assert blocked and all(r.body == "too many requests to /greet1a" for r in blocked)
    assert blocked[0].headers["Content-Type"].startswith("text/plain")
    assert all(app.get("/greet2a").status == 200 for _ in range(5))


def test_every_endpoint_has_metrics_under_its_route_template(app: Server) -> None:
    assert app.get("/users/7").body.strip() == '{"id":7}'
    app.get("/greet2a")
    text = app.metrics()
    assert 'instpy_requests_passed_total{resource="GET /users/<int:user_id>"}' in text
    assert 'instpy_requests_passed_total{resource="GET /greet2a"}' in text


def test_concurrency_limit_holds_and_the_view_never_runs_for_blocked(app: Server) -> None:
    concurrency_limit_holds(app, "POST", "/slow")


def test_hot_parameter_limits_each_value_with_exceptions(app: Server) -> None:
    app.rules(
        'rules:\n  - resource: "GET /search"\n'
        '    hot_param: {from: query, name: uid, qps: 2, burst: 0, items: {"vip-1": 100}}\n',
        APPLIED,
    )
    query_hot_parameter_holds(app, "/search")
    assert app.get("/search?uid=u2").status == 200


def test_breaker_opens_on_errors_and_answers_with_its_fallback(app: Server) -> None:
    breaker_opens_on_failures(app, "GET /flaky", "/flaky")


def test_a_rule_edit_takes_effect_within_a_second(app: Server) -> None:
    app.rules("rules: []\n", APPLIED)
    assert all(app.get("/users/1").status == 200 for _ in range(3))
    write_rules(app.governance, 'rules:\n  - resource: "GET /users/<int:user_id>"\n'
                "    flow: {qps: 0}\n")
    took = until(lambda: app.get("/users/1").status == 429, timeout=3.0)
    assert took < 1.0, f"rule took {took:.2f}s to take effect"


def test_a_broken_edit_keeps_the_last_good_rules(app: Server) -> None:
    app.rules('rules:\n  - resource: "GET /greet1a"\n    flow: {qps: 0}\n', APPLIED)
    assert app.get("/greet1a").status == 429
    app.rules('rules:\n  - resource: "GET /greet1a"\n    flow: {qps: -1}\n', REJECTED)
    rejected = [line for line in app.log.read_text().splitlines() if REJECTED in line][-1]
    event = json.loads(rejected[rejected.index("{"):])
    assert event["file"].endswith("governance.yaml") and event["line"] == 3
    assert "qps" in event["field"]
    assert all(app.get("/greet1a").status == 429 for _ in range(3))


def test_outbound_degrade_answers_without_calling_the_dependency(app: Server) -> None:
    app.rules("rules: []\n", APPLIED)
    hits = app.dependency.hits
    assert app.get("/dependency").body == "dependency says hi"
    assert app.dependency.hits == hits + 1
    app.rules(
        f'rules:\n  - resource: "GET http://127.0.0.1:{app.dependency.port}/dep"\n'
        '    degrade: true\n    fallback: {status: 503, body: "dependency cut off"}\n',
        APPLIED,
    )
    replies = [app.get("/dependency") for _ in range(3)]
    assert all(r.status == 503 and r.body == "dependency cut off" for r in replies)
    assert app.dependency.hits == hits + 1


def test_method_level_rule_raises_the_configured_exception(app: Server) -> None:
    app.rules(
        'rules:\n  - resource: "shop.orders:OrderService.create"\n    flow: {qps: 1}\n'
        '    fallback: {raise: "shop.orders:Unavailable", message: "orders are closed"}\n',
        APPLIED,
    )
    replies = [app.post("/orders?item=pen") for _ in range(3)]
    assert replies[0].status == 200 and json.loads(replies[0].body)["item"] == "pen"
    assert replies[-1].status == 503
    assert json.loads(replies[-1].body) == {"error": "orders are closed"}


def test_key_never_appears_in_the_service_log(app: Server, key: str) -> None:
    assert key not in app.log.read_text()


# -- other ways to serve and ship it ---------------------------------------------------------


def test_gunicorn_serves_the_governed_tree(tree: Built, key: str,
                                           tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "4",
           "-b", "127.0.0.1:{port}", "app:app"]
    for svc in _start(cmd, tree.out, str(tree.out), key, tmp_path):
        svc.rules('rules:\n  - resource: "GET /greet1a"\n    flow: {qps: 1}\n', APPLIED)
        statuses = [svc.get("/greet1a").status for _ in range(4)]
        assert statuses.count(429) >= 2 and svc.get("/greet2a").status == 200


def test_wheelhouse_installs_offline_and_governs(key: str, tmp_path: Path) -> None:
    built = _build(tmp_path, key, "wheel")
    wheels = sorted(p.name for p in built.out.glob("*.whl"))
    assert any(w.startswith("instpy_runtime-") for w in wheels)
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
         str(built.out), "--target", str(site), "-r", str(built.out / "app" / "requirements.txt")],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (site / "instpy" / "runtime" / "injected.py").is_file()
    assert not (site / "libcst").exists()
    app_dir = built.out / "app"
    for svc in _start([sys.executable, "app.py"], app_dir, f"{site}:{app_dir}", key, tmp_path):
        svc.rules('rules:\n  - resource: "GET /greet1a"\n    flow: {qps: 0}\n', APPLIED)
        assert svc.get("/greet1a").status == 429
        assert svc.get("/greet2a").status == 200

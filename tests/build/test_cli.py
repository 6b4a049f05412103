"""The CLI end to end: scan, check, diff, build --format tree, the cache and reproducibility."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from buildtest_helpers import FIXTURES, REPO
from click.testing import CliRunner

from instpy.build.pipeline import run
from instpy.build.rules import load_rules
from instpy.cli import main

SHOP = FIXTURES / "shopapp"
RULES = FIXTURES / "shop-rules.yaml"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    dest = tmp_path / "shopapp"
    shutil.copytree(SHOP, dest)
    return dest


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_scan_json(shop: Path) -> None:
    code, out, _ = invoke("scan", str(shop), "-r", str(RULES), "--json", "--no-cache")
    assert code == 0
    plan = json.loads(out)
    assert [t["fingerprint"] for t in plan["targets"]] == [
        "shop.orders:OrderService.create", "shop.orders:list_orders"
    ]
    assert plan["targets"][0]["file"] == "src/shop/orders.py" and plan["targets"][0]["line"] == 7
    assert plan["unmatched"] == []
    assert plan["files_scanned"] == 1  # the module-name pre-filter kept only shop.orders


def test_check(shop: Path, tmp_path: Path) -> None:
    code, out, _ = invoke("check", str(shop), "-r", str(RULES), "--no-cache")
    assert code == 0 and "ok: 2 rule(s), 2 target(s)" in out
    drift = tmp_path / "drift.yaml"
    drift.write_text(RULES.read_text().replace("function: create", "function: create_order"))
    code, _, err = invoke("check", str(shop), "-r", str(drift), "--no-cache")
    assert code == 1
    assert f"{drift}:2: rule 'orders-create' matches nothing" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: x\n  module: shop\n")
    code, _, err = invoke("check", str(shop), "-r", str(bad))
    assert code == 1 and f"{bad}:1: rule 'x', field 'function': the field is missing" in err


def test_version_range_excludes(shop: Path, tmp_path: Path) -> None:
    rules = tmp_path / "v.yaml"
    rules.write_text(RULES.read_text().replace('">=1.0,<2"', '">=5"'))
    plan = run(shop, load_rules([rules]), rewrite=False).plan
    (unmatched,) = plan.unmatched
    assert unmatched.reason == "shopapp 1.2.0 is outside '>=5'"


def test_diff(shop: Path) -> None:
    code, out, _ = invoke("diff", str(shop), "-r", str(RULES), "--no-cache")
    assert code == 0
    assert out.startswith("--- a/src/shop/orders.py\n+++ b/src/shop/orders.py\n")
    assert "+import instpy.runtime.injected as _instpy_rt\n" in out


def test_build_tree_runs_governed(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = invoke("build", str(shop), "-r", str(RULES), "-o", str(out), "--no-cache")
    assert code == 0 and "2 target(s)" in stdout
    before, after = files(shop), files(out)
    changed = {rel for rel in before if before[rel] != after[rel]}
    assert changed == {"src/shop/orders.py"}
    assert set(after) - set(before) == {".instpy-build.json"}
    script = (
        "from shop.orders import OrderService, list_orders; from shop import hooks\n"
        "print(OrderService().create('x', 2), OrderService().create('y', 11), list_orders())\n"
        "print(hooks.CALLS)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(out / "src"), str(REPO)])}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=True)
    first, second = proc.stdout.splitlines()
    assert first == ("{'item': 'x', 'qty': 2} {'blocked': True, 'by': 'shop.orders'} "
                     "['a', 'b']")
    assert second == ("['enter shop.orders:OrderService.create', "
                      "'exit shop.orders:OrderService.create', "
                      "'enter shop.orders:OrderService.create', "
                      "'enter shop.orders:list_orders']")


def test_build_is_reproducible_and_idempotent(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    one, two, again = tmp_path / "one", tmp_path / "two", tmp_path / "again"
    for out in (one, two):
        assert invoke("build", str(shop), "-r", str(RULES), "-o", str(out), "--no-cache")[0] == 0
    assert files(one) == files(two)
    assert (one / "src/shop/orders.py").stat().st_mtime == 1700000000
    # Building the built tree changes no source file.
    assert invoke("build", str(one), "-r", str(RULES), "-o", str(again), "--no-cache")[0] == 0
    built, rebuilt = files(one), files(again)
    assert {k: v for k, v in built.items() if k.endswith(".py")} == {
        k: v for k, v in rebuilt.items() if k.endswith(".py")
    }


def test_rebuild_in_place_and_refusals(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["build", str(shop), "-r", str(RULES), "-o", str(out), "--no-cache"]
    assert invoke(*args)[0] == 0
    code, stdout, _ = invoke(*args)
    assert code == 0 and "0 file(s) written" in stdout
    (shop / "README.txt").unlink()
    assert invoke(*args)[0] == 0 and not (out / "README.txt").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    code, _, err = invoke("build", str(shop), "-r", str(RULES), "-o", str(foreign))
    assert code == 2 and "not written by instpy build" in err
    code, _, err = invoke("build", str(shop), "-r", str(RULES), "-o", str(shop / "out"))
    assert code == 2 and "inside the input" in err


def test_cache_hits_and_bad_entries(
    shop: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = load_rules([RULES])
    cache = tmp_path / "cache"
    cold = run(shop, rules, cache_dir=cache)
    entries = [p for p in cache.rglob("*") if p.is_file()]
    assert len(entries) == 1
    warm = run(shop, rules, cache_dir=cache)
    assert warm.outputs == cold.outputs and warm.plan.targets == cold.plan.targets
    entries[0].write_bytes(b"{not json\n")
    with caplog.at_level(logging.WARNING, logger="instpy.build.cache"):
        rebuilt = run(shop, rules, cache_dir=cache)
    assert rebuilt.outputs == cold.outputs
    assert "is bad" in caplog.text and "rebuilding it" in caplog.text
    assert run(shop, rules, cache_dir=cache).outputs == cold.outputs  # entry rewritten


def test_collision_is_a_build_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "mod.py").write_text("def f():\n    _instpy_x = 1\n")
    rules = tmp_path / "r.yaml"
    rules.write_text("- name: r\n  module: mod\n  function: f\n  on_enter: h:e\n")
    code, _, err = invoke("build", str(tmp_path / "src"), "-r", str(rules), "-o",
                          str(tmp_path / "o"), "--no-cache")
    assert code == 2 and "mod.py:2: '_instpy_x' uses the prefix '_instpy_'" in err

"""`--format wheel`: a project built by the PEP 517 front end, rewritten, installed by pip."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from buildtest_helpers import FIXTURES, REPO
from click.testing import CliRunner

from instpy.cli import main

RULES = FIXTURES / "shop-rules.yaml"


def _record_ok(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        (record_name,) = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
        rows = list(csv.reader(io.StringIO(zf.read(record_name).decode())))
        listed = {row[0] for row in rows}
        assert listed == set(zf.namelist())
        for name, digest, size in rows:
            if name == record_name:
                assert digest == size == ""
                continue
            data = zf.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == f"sha256={expected.decode()}" and int(size) == len(data)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    project = tmp / "shopapp"
    shutil.copytree(FIXTURES / "shopapp", project)
    os.environ["INSTPY_NO_BUILD_ISOLATION"] = "1"  # offline-safe: use this venv's setuptools
    try:
        result = CliRunner().invoke(
            main,
            ["build", str(project), "-r", str(RULES), "--format", "wheel", "-o", str(tmp / "out"),
             "--no-cache"],
            catch_exceptions=False,
        )
    finally:
        del os.environ["INSTPY_NO_BUILD_ISOLATION"]
    assert result.exit_code == 0, result.output
    (wheel,) = (tmp / "out").glob("*.whl")
    return tmp, wheel


def test_wheel_record_and_reproducible(built: tuple[Path, Path]) -> None:
    tmp, wheel = built
    _record_ok(wheel)
    with zipfile.ZipFile(wheel) as zf:
        assert b"_instpy_rt.Target('shop.orders:OrderService.create'" in zf.read("shop/orders.py")
        assert b"_instpy_" not in zf.read("shop/hooks.py")
    again = tmp / "again"
    code = CliRunner().invoke(
        main, ["build", str(wheel), "-r", str(RULES), "--format", "wheel", "-o", str(again),
               "--no-cache"],
    ).exit_code
    assert code == 0
    # A rewritten wheel rewritten again is byte-identical (idempotent, reproducible).
    assert (again / wheel.name).read_bytes() == wheel.read_bytes()


def test_pip_installs_the_wheel(built: tuple[Path, Path]) -> None:
    tmp, wheel = built
    target = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO)])}
    script = ("from shop.orders import OrderService; from shop import hooks\n"
              "print(OrderService().create('z', 50), hooks.CALLS)")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == ("{'blocked': True, 'by': 'shop.orders'} "
                           "['enter shop.orders:OrderService.create']")

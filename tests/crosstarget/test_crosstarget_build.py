"""Cross-target governed builds with real pip against the package index.

From this machine: fixtures/crosstarget_shop (Flask + orjson, no governance code) built for
linux/arm64 + CPython 3.12 holds the aarch64/cp312 binaries and no x86-64 ones; built for this
machine as an explicit target, it runs and is governed; a dependency with no wheel for the
target fails the build naming it. One build per target (module fixtures).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from service_support import REPO, free_port, http, instpy, mint_key, serve, until

from instpy.build.target import host_platform

SERVICE = REPO / "fixtures" / "crosstarget_shop"
NO_WHEEL = REPO / "fixtures" / "crosstarget_nowheel"
HOST = host_platform()
HOST_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
ELF_MACHINE = {183: "aarch64", 62: "x86_64"}  # e_machine of the ELF header

pytestmark = pytest.mark.skipif(
    HOST != "linux/amd64", reason="the proof builds from an x86-64 Linux machine"
)


@pytest.fixture(scope="module")
def key() -> str:
    return mint_key("shop")


@dataclass
class Built:
    out: Path
    log: str
    seconds: float

    @property
    def manifest(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.out / "instpy-manifest.json").read_text())
        return data


def _build(out: Path, key: str, *target: str) -> Built:
    start = time.monotonic()
    done = instpy("build", str(SERVICE), "--govern", "-o", str(out), "--no-cache", *target,
                  env={"INSTPY_LICENSE_KEY": key})
    assert done.returncode == 0, done.stderr
    return Built(out, done.stdout + done.stderr, time.monotonic() - start)


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory, key: str) -> Built:
    return _build(tmp_path_factory.mktemp("arm") / "out", key,
                  "--target-platform", "linux/arm64", "--target-python", "3.12")


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory, key: str) -> Built:
    return _build(tmp_path_factory.mktemp("native") / "out", key,
                  "--target-platform", "linux/amd64", "--target-python", HOST_PYTHON)


def _elf_machines(out: Path) -> dict[str, str]:
    found = {}
    for so in sorted(out.rglob("*.so")):
        header = so.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", so
        number = int.from_bytes(header[18:20], "little")
        found[so.relative_to(out).as_posix()] = ELF_MACHINE.get(number, str(number))
    return found


def _wheel_tags(out: Path, dist: str) -> list[str]:
    wheel = next(out.glob(f"{dist}-*.dist-info")) / "WHEEL"
    return [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines()
            if line.startswith("Tag:")]


def test_arm64_build_holds_the_aarch64_cp312_wheels_and_no_x86_64(arm: Built) -> None:
    machines = _elf_machines(arm.out)
    names = set(machines)
    # the service's compiled dependency and the runtime's (PyYAML, psutil) are the target's
    assert any(n.startswith("orjson/") and n.endswith(".cpython-312-aarch64-linux-gnu.so")
               for n in names)
    assert any(n.startswith("yaml/") and "cpython-312-aarch64" in n for n in names)
    assert any(n.startswith("psutil/") for n in names)
    assert set(machines.values()) == {"aarch64"}, machines
    assert not [n for n in names if "x86_64" in n or "x86-64" in n]
    for dist in ("orjson", "pyyaml", "psutil", "markupsafe"):
        tags = _wheel_tags(arm.out, dist)
        assert tags and all(t.endswith("aarch64") for t in tags), (dist, tags)
        assert all(t.startswith(("cp312-cp312-", "cp36-abi3-")) for t in tags), (dist, tags)
    wheels = [d["wheel"] for d in arm.manifest["distributions"]]  # type: ignore[attr-defined]
    assert not [w for w in wheels if "x86_64" in w]


def test_arm64_build_records_the_target_and_decides_markers_for_it(arm: Built) -> None:
    target = arm.manifest["target"]
    assert isinstance(target, dict)
    assert (target["platform"], target["python"], target["abi"]) == ("linux/arm64", "3.12",
                                                                     "cp312")
    assert target["native"] is False and "manylinux2014_aarch64" in target["wheel_platforms"]
    assert target["syntax_check"]["grammar"] == "3.12" and target["syntax_check"]["files"] > 0
    assert target["markers"]["ignored"] == ['tomli>=2; python_version < "3.12"']
    dists = {d["name"] for d in arm.manifest["distributions"]}  # type: ignore[attr-defined]
    # true on the target only (3.12, aarch64), false on this 3.11 x86-64 machine: present
    assert {"typing-extensions", "six", "orjson", "flask"} <= dists
    assert "tomli" not in dists and not (arm.out / "tomli").exists()
    assert "flask.app:Flask.full_dispatch_request" in {
        t["fingerprint"] for t in arm.manifest["targets"]}  # type: ignore[attr-defined]
    print(f"\nlinux/arm64 cp312 build: {arm.seconds:.1f}s")


def test_native_target_build_runs_and_governs(native: Built, key: str, tmp_path: Path) -> None:
    assert set(_elf_machines(native.out).values()) == {"x86_64"}
    target = native.manifest["target"]
    assert isinstance(target, dict) and target["platform"] == "linux/amd64"
    dists = {d["name"] for d in native.manifest["distributions"]}  # type: ignore[attr-defined]
    if HOST_PYTHON == "3.11":
        assert "tomli" in dists and "six" not in dists and "typing-extensions" not in dists
    governance = tmp_path / "governance.yaml"
    governance.write_text(
        'rules:\n  - resource: "GET /hello"\n    flow: {qps: 1}\n'
        '    fallback: {status: 429, body: "slow down, /hello", content_type: text/plain}\n'
    )
    port = free_port()
    env = {"PYTHONPATH": str(native.out), "PORT": str(port), "INSTPY_LICENSE_KEY": key,
           "INSTPY_GOVERNANCE": str(governance), "INSTPY_METRICS_PORT": str(free_port())}
    with serve([sys.executable, "app.py"], port, env, native.out, tmp_path / "server.log"):
        base = f"http://127.0.0.1:{port}"
        assert http("GET", base + "/other").body == '{"other":true}'  # orjson, governed app
        replies = [http("GET", base + "/hello") for _ in range(6)]
        blocked = [r for r in replies if r.status == 429]
        assert 1 <= sum(r.status == 200 for r in replies) <= 2, replies
        assert blocked and all(r.body == "slow down, /hello" for r in blocked)
        assert until(lambda: http("GET", base + "/other").status == 200)
    print(f"\nlinux/amd64 CPython {HOST_PYTHON} build: {native.seconds:.1f}s")


def test_a_target_without_a_wheel_fails_naming_the_dependency_and_tags(
    tmp_path: Path, key: str
) -> None:
    out = tmp_path / "out"
    start = time.monotonic()
    done = instpy("build", str(NO_WHEEL), "--govern", "-o", str(out), "--target-platform",
                  "linux/arm64", "--target-python", "3.13", env={"INSTPY_LICENSE_KEY": key})
    assert done.returncode == 2
    first = done.stderr.splitlines()[0]
    assert first.startswith("error: no wheel of orjson==3.9.0 for the target linux/arm64 "
                            "CPython 3.13"), done.stderr
    assert "cp313-cp313" in first and "manylinux2014_aarch64" in first
    assert "what to do:" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    print(f"\nno-wheel failure: {time.monotonic() - start:.1f}s")


def test_target_options_need_govern(tmp_path: Path) -> None:
    done = instpy("build", str(SERVICE), "-r", str(SERVICE), "-o", str(tmp_path / "o"),
                  "--target-platform", "linux/arm64")
    assert done.returncode == 2 and "need --govern" in done.stderr

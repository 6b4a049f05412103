"""Targets, marker decisions and the target-grammar check, without the network (fast)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from packaging.tags import Tag
from test_deps import make_wheel

from instpy.build.deps import NoWheelError, collect_for_target
from instpy.build.syntax_check import SyntaxTargetError, check_syntax
from instpy.build.target import TargetError, parse_target


def test_docker_names_map_to_pip_platform_tags() -> None:
    arm = parse_target("linux/arm64", "3.12")
    assert arm is not None and arm.machine == "aarch64" and arm.abi == "cp312"
    assert arm.platforms[0] == "manylinux_2_28_aarch64"
    assert arm.platforms[-2:] == ("manylinux_2_17_aarch64", "manylinux2014_aarch64")
    assert not any("x86_64" in p for p in arm.platforms)
    args = arm.pip_args()
    assert args[-7:] == ["--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
                         "--only-binary=:all:"]
    assert Tag("cp312", "abi3", "manylinux2014_aarch64") in arm.tags
    assert Tag("cp312", "cp312", "manylinux_2_17_x86_64") not in arm.tags
    assert Tag("py3", "none", "any") in arm.tags
    amd = parse_target("linux/amd64", "3.11", "glibc2.17")
    assert amd is not None and amd.platforms[-1] == "manylinux1_x86_64"
    musl = parse_target("linux/arm64/v8", "3.12", "musl")
    assert musl is not None and musl.platform == "linux/arm64"
    assert musl.platforms == ("musllinux_1_2_aarch64", "musllinux_1_1_aarch64",
                              "musllinux_1_0_aarch64")
    assert parse_target(None, None) is None  # a native build: pip as configured


def test_marker_environment_is_the_targets_not_this_machines() -> None:
    arm = parse_target("linux/arm64", "3.12.4")
    assert arm is not None
    env = arm.marker_environment()
    assert env["platform_machine"] == "aarch64"
    assert (env["python_version"], env["python_full_version"]) == ("3.12", "3.12.4")
    assert env["sys_platform"] == "linux" and env["platform_system"] == "Linux"


@pytest.mark.parametrize(("platform", "python", "libc", "says"), [
    ("windows/amd64", "3.12", None, "only Linux"),
    ("linux/sparc", "3.12", None, "unknown architecture"),
    ("linux/arm64", "3.9", None, "3.10 or newer"),
    ("linux/arm64", "twelve", None, "3.12 (or 3.12.4)"),
    ("linux/arm64", "3.12", "bionic", "glibc or musl"),
    ("linux/arm64", "3.12", "glibc2.12", "ldd --version"),
])
def test_bad_targets_say_what_to_write(
    platform: str, python: str, libc: str | None, says: str
) -> None:
    with pytest.raises(TargetError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_target(platform, python, libc)


# -- markers: pip decides them for this machine; the build decides them for the target ---------


@pytest.fixture
def links(tmp_path: Path) -> Path:
    links = tmp_path / "links"
    make_wheel(links, "web-kit", "1.0", {"web_kit/__init__.py": ""}, (
        'new-helper>=1; python_version >= "3.12"',
        'old-helper; python_version < "3.12"',
        'arm-helper; platform_machine == "aarch64"',
    ))
    for name in ("new-helper", "old-helper", "arm-helper", "top-new", "top-old"):
        make_wheel(links, name, "1.0", {name.replace("-", "_") + "/__init__.py": ""})
    make_wheel(links, "native-only", "1.0", {"native_only/__init__.py": ""},
               tag="cp311-cp311-manylinux_2_17_x86_64")
    return links


def _service(tmp_path: Path, requirements: str) -> Path:
    service = tmp_path / "svc"
    service.mkdir()
    (service / "requirements.txt").write_text(requirements)
    return service


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the markers straddle a 3.11 host")
def test_markers_of_lines_and_metadata_are_decided_for_the_target(
    tmp_path: Path, links: Path
) -> None:
    service = _service(tmp_path, (
        "web-kit\n"
        'top-new; python_version >= "3.12"  # true on the target only\n'
        'top-old; python_version < "3.12"\n'
    ))
    arm = parse_target("linux/arm64", "3.12")
    assert arm is not None
    got = collect_for_target(service, tmp_path / "house", arm, ["--no-index", "--find-links",
                             str(links)])  # fmt: skip
    assert sorted(w.name for w in got.wheels) == [
        "arm-helper", "new-helper", "top-new", "web-kit"]
    assert sorted(got.added) == ["arm-helper", "new-helper>=1"]  # pip left them out here
    assert got.dropped == ("old_helper-1.0-py3-none-any.whl",)  # pip fetched it for 3.11
    assert got.ignored == ('top-old; python_version < "3.12"',)
    assert sorted(os.listdir(tmp_path / "house")) == sorted(w.path.name for w in got.wheels)


def test_a_dependency_without_a_wheel_for_the_target_is_named_with_the_tags_tried(
    tmp_path: Path, links: Path
) -> None:
    service = _service(tmp_path, "native-only\n")
    arm = parse_target("linux/arm64", "3.12")
    assert arm is not None
    with pytest.raises(NoWheelError) as info:
        collect_for_target(service, tmp_path / "house", arm, ["--no-index", "--find-links",
                           str(links)])  # fmt: skip
    message = str(info.value)
    assert info.value.requirement == "native-only"
    assert "no wheel of native-only for the target linux/arm64 CPython 3.12" in message
    assert "manylinux2014_aarch64" in message and "cp312-cp312" in message
    assert "--find-links" in message and "--only-binary=:all:" in message


# -- the target's grammar --------------------------------------------------------------------


@pytest.mark.parametrize(("source", "newest_rejected", "feature"), [
    ("match x:\n    case 1:\n        pass\n", (3, 9), "match statement"),
    ("try:\n    pass\nexcept* E:\n    pass\n", (3, 10), "except*"),
    ("a[*b]\n", (3, 10), "PEP 646"),
    ("x = 1\n\n\ntype X = int\n", (3, 11), "type alias"),
    ("def f[T](x: T) -> T: ...\n", (3, 11), "type parameters"),
    ("x = f'{a['k']}'\n", (3, 11), "PEP 701"),
    ("def f[T = int](): ...\n", (3, 12), "PEP 696"),
])
def test_syntax_newer_than_the_target_is_an_error_naming_file_and_line(
    source: str, newest_rejected: tuple[int, int], feature: str
) -> None:
    with pytest.raises(SyntaxTargetError) as info:
        check_syntax({"pkg/mod.py": source.encode()}, newest_rejected)
    line = source.splitlines().index(next(s for s in source.splitlines() if s.strip())) + 1
    if "type X" in source:
        line = 4
    assert f"pkg/mod.py:{line}: " in str(info.value) and feature in str(info.value)
    accepted = (newest_rejected[0], newest_rejected[1] + 1)
    assert check_syntax({"pkg/mod.py": source.encode()}, accepted).files == 1


def test_older_syntax_and_look_alikes_pass() -> None:
    source = (
        "with (a):\n    pass\n"
        "x = f'{a[\"k\"]!r:>{w}}' + f'''{a['k']}'''\n"
        "@a.b.c(1)\ndef f(a, b=1, *c, **d): return (*a, b)\n"
    )
    assert check_syntax({"m.py": source.encode()}, (3, 10)).note == ""


def test_a_target_newer_than_the_checked_grammars_says_so() -> None:
    summary = check_syntax({"m.py": b"x = 1\n"}, (3, 19))
    assert summary.version == "3.14" and "newer than the newest grammar checked" in summary.note

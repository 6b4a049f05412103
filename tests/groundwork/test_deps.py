"""Dependency collection with real pip (offline: --no-index --find-links) and wheel installs."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from instpy.build.deps import DependencyError, Wheel, collect_wheels, install_wheels, service_kind


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    files: dict[str, str],
    requires: tuple[str, ...] = (),
    *,
    tag: str = "py3-none-any",
    corrupt: str | None = None,
) -> Path:
    """A minimal valid wheel, written directly (fast, no build backend)."""
    dist = f"{name.replace('-', '_')}-{version}"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    members = {
        **files,
        f"{dist}.dist-info/METADATA": meta,
        f"{dist}.dist-info/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    record = "".join(
        f"{path},{_hash(text.encode())},{len(text.encode())}\n" for path, text in members.items()
    )
    record += f"{dist}.dist-info/RECORD,,\n"
    path = folder / f"{dist}-{tag}.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in members.items():
            info = zipfile.ZipInfo(member, date_time=(2024, 1, 2, 3, 4, 5))
            info.external_attr = (0o755 if member.endswith(".sh") else 0o644) << 16
            zf.writestr(info, text + ("tampered" if member == corrupt else ""))
        zf.writestr(zipfile.ZipInfo(f"{dist}.dist-info/RECORD"), record)
    return path


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """A local 'index' folder: tiny-dep 1.0 needs Tiny_Sub (name normalised by pip)."""
    links = tmp_path / "links"
    make_wheel(links, "tiny-dep", "1.0", {"tiny_dep/__init__.py": "X = 1\n"}, ("Tiny_Sub>=1",))
    make_wheel(links, "tiny_sub", "1.2", {"tiny_sub/__init__.py": "Y = 2\n"})
    return links


def _offline(links: Path) -> list[str]:
    return ["--no-index", "--find-links", str(links), "--no-build-isolation"]


def test_requirements_folder(tmp_path: Path, index: Path) -> None:
    service = tmp_path / "svc"
    service.mkdir()
    (service / "app.py").write_text("import tiny_dep\n")
    (service / "requirements.txt").write_text("tiny-dep==1.0\n")
    (service / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")  # tools only
    assert service_kind(service) == "requirements"
    house = tmp_path / "house"
    (house).mkdir()
    (house / "stale-0.1-py3-none-any.whl").write_bytes(b"")  # not part of this resolution
    wheels = collect_wheels(service, house, _offline(index))
    assert [(w.name, w.version, w.is_project) for w in wheels] == [
        ("tiny-dep", "1.0", False),
        ("tiny-sub", "1.2", False),
    ]
    assert all(w.path.parent == house.resolve() and w.path.is_file() for w in wheels)
    assert sorted(p.name for p in house.iterdir())[-1] == "tiny_sub-1.2-py3-none-any.whl"


# An in-tree PEP 517 backend: exercises pip's PEP 517 path with no build dependency to fetch.
BACKEND = """
import base64, hashlib, pathlib, zipfile

DIST = "orders_service-0.3"


def _hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {
        "orders/__init__.py": pathlib.Path("orders/__init__.py").read_bytes(),
        DIST + ".dist-info/METADATA": b"Metadata-Version: 2.1\\nName: Orders.Service\\n"
        b"Version: 0.3\\nRequires-Dist: tiny-dep>=1\\n",
        DIST + ".dist-info/WHEEL": b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\n"
        b"Tag: py3-none-any\\n",
    }
    record = "".join(f"{k},{_hash(v)},{len(v)}\\n" for k, v in files.items())
    name = DIST + "-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
        zf.writestr(DIST + ".dist-info/RECORD", record + DIST + ".dist-info/RECORD,,\\n")
    return name
"""


def test_project_yields_its_own_wheel(tmp_path: Path, index: Path) -> None:
    project = tmp_path / "proj"
    (project / "orders").mkdir(parents=True)
    (project / "orders" / "__init__.py").write_text("VERSION = '0.3'\n")
    (project / "backend.py").write_text(BACKEND)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    assert service_kind(project) == "project"
    wheels = collect_wheels(project, tmp_path / "house", _offline(index))
    assert [(w.name, w.version, w.is_project) for w in wheels] == [
        ("orders-service", "0.3", True),
        ("tiny-dep", "1.0", False),
        ("tiny-sub", "1.2", False),
    ]
    tree = tmp_path / "tree"
    install_wheels(wheels, tree)
    assert (tree / "orders" / "__init__.py").is_file() and (tree / "tiny_sub").is_dir()


def test_pip_failure_says_what_and_how(tmp_path: Path, index: Path) -> None:
    service = tmp_path / "svc"
    service.mkdir()
    (service / "requirements.txt").write_text("no-such-package-xyz==9\n")
    args = [*_offline(index), "--extra-index-url", "https://user:s3cret@example.invalid/simple"]
    with pytest.raises(DependencyError) as info:
        collect_wheels(service, tmp_path / "house", args)
    message = str(info.value)
    assert "pip failed" in message and "no-such-package-xyz" in message
    assert "No matching distribution" in message  # pip's own words
    assert "what to do:" in message and "--find-links" in message
    assert "s3cret" not in message


def test_not_a_service(tmp_path: Path) -> None:
    with pytest.raises(DependencyError, match=r"requirements\.txt"):
        collect_wheels(tmp_path, tmp_path / "house")


def _tree(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        p.relative_to(root).as_posix(): (
            p.read_bytes(),
            p.stat().st_mode & 0o777,
            int(p.stat().st_mtime),
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_install_layout_metadata_and_determinism(tmp_path: Path) -> None:
    links = tmp_path / "links"
    wheels = [
        make_wheel(
            links,
            "pkg-a",
            "2.0",
            {
                "pkg_a/__init__.py": "A = 1\n",
                "pkg_a-2.0.data/platlib/pkg_a_native.py": "N = 1\n",
                "pkg_a-2.0.data/purelib/pkg_a_extra/__init__.py": "",
                "pkg_a-2.0.data/scripts/pkg-a": "#!python\n",
                "pkg_a-2.0.data/data/share/pkg_a/config.json": "{}\n",
                "pkg_a/run.sh": "echo\n",
            },
        ),
        make_wheel(links, "pkg-b", "0.1", {"pkg_b.py": "B = 2\n"}),
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    result = install_wheels(wheels, one)
    install_wheels(list(reversed(wheels)), two)
    assert _tree(one) == _tree(two)
    assert set(result.files) >= {
        "pkg_a/__init__.py",
        "pkg_a_native.py",
        "pkg_a_extra/__init__.py",
        "share/pkg_a/config.json",
        "pkg_b.py",
        "pkg_a-2.0.dist-info/METADATA",
        "pkg_a-2.0.dist-info/RECORD",
        "pkg_a-2.0.dist-info/INSTALLER",
    }
    assert result.skipped == ("pkg_a-2.0-py3-none-any.whl:pkg_a-2.0.data/scripts/pkg-a",)
    assert not (one / "pkg_a-2.0.data").exists()
    assert (one / "pkg_a" / "run.sh").stat().st_mode & 0o777 == 0o755
    versions = {
        d.metadata["Name"]: d.version for d in importlib.metadata.distributions(path=[str(one)])
    }
    assert versions == {"pkg-a": "2.0", "pkg-b": "0.1"}
    record = (one / "pkg_a-2.0.dist-info" / "RECORD").read_text()
    assert "pkg_a_native.py,sha256=" in record and ".data/" not in record
    # Importable the way a governed tree is run: PYTHONPATH=tree.
    out = subprocess.run(
        [sys.executable, "-c", "import pkg_a, pkg_b, pkg_a_native; print(pkg_b.B)"],
        env={"PYTHONPATH": str(one)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "2"


def test_install_honours_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = make_wheel(tmp_path / "links", "pkg", "1.0", {"pkg.py": ""})
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    install_wheels([Wheel("pkg", "1.0", wheel)], tmp_path / "t")
    assert int((tmp_path / "t" / "pkg.py").stat().st_mtime) == 1700000000


def test_install_refuses_damaged_or_unsafe_wheels(tmp_path: Path) -> None:
    bad = make_wheel(tmp_path / "a", "pkg", "1.0", {"pkg.py": "x = 1\n"}, corrupt="pkg.py")
    with pytest.raises(DependencyError, match=r"pkg\.py does not match its RECORD hash"):
        install_wheels([bad], tmp_path / "t")
    evil = make_wheel(tmp_path / "b", "evil", "1.0", {"../escape.py": ""})
    with pytest.raises(DependencyError, match="unsafe member path"):
        install_wheels([evil], tmp_path / "t2")
    assert not (tmp_path / "escape.py").exists()


def test_install_reports_overwrites(tmp_path: Path) -> None:
    a = make_wheel(tmp_path / "l", "aa", "1.0", {"shared/__init__.py": "a\n"})
    b = make_wheel(tmp_path / "l", "bb", "1.0", {"shared/__init__.py": "b\n"})
    result = install_wheels([b, a], tmp_path / "t")
    assert result.overwritten == ("shared/__init__.py",)
    assert (tmp_path / "t" / "shared" / "__init__.py").read_text() == "b\n"  # sorted: bb last


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _pypi_reachable(), reason="PyPI is not reachable from here")
def test_real_index_tiny_pure_package(tmp_path: Path) -> None:
    service = tmp_path / "svc"
    service.mkdir()
    (service / "requirements.txt").write_text("six==1.17.0\n")
    wheels = collect_wheels(service, tmp_path / "house", ["--only-binary", ":all:"])
    assert [(w.name, w.version) for w in wheels] == [("six", "1.17.0")]
    result = install_wheels(wheels, tmp_path / "tree")
    assert "six.py" in result.files

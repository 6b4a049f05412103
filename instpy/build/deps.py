"""Collect a service's dependencies as wheels with pip, and install wheels into a tree.

`collect_wheels` runs pip in a subprocess (`python -m pip wheel`), the same resolver, indexes,
caches and configuration (pip.conf, PIP_* variables) the team already uses; pip options such as
`--no-index --find-links DIR`, `--index-url`, `--only-binary :all:` pass through unchanged.
Each pip run writes into a fresh staging folder, so the result lists exactly the wheels this
resolution produced even when the wheelhouse holds older ones.

`install_wheels` unpacks wheels into a folder the way `pip install --target` lays it out, without
pip, deterministically (sorted order, fixed modes, mtimes from SOURCE_DATE_EPOCH or the wheel),
so the compiler's emit can reuse it for the `tree` format.

Exception tree::

    RuntimeError
     └── DependencyError    pip failed (its own message is included), or a wheel is unusable
"""

from __future__ import annotations

import base64
import calendar
import csv
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

__all__ = [
    "DependencyError",
    "InstallResult",
    "Wheel",
    "collect_wheels",
    "install_wheels",
    "service_kind",
]

_PIP_COMMON = ("--disable-pip-version-check", "--no-input", "--progress-bar", "off")
_PIP_TAIL_LINES = 25
_CREDENTIALS_RE = re.compile(r"(?<=://)[^/@\s]+@")
_TOML_TABLE_RE = re.compile(r"^\s*\[(project|build-system)\]\s*$", re.M)


class DependencyError(RuntimeError):
    """pip could not resolve, fetch or build the dependencies, or a wheel cannot be installed."""


@dataclass(frozen=True, order=True)
class Wheel:
    name: str  # normalised (PEP 503): lowercase, runs of '-', '_', '.' become '-'
    version: str
    path: Path
    is_project: bool = False  # the service's own wheel, built from its pyproject.toml


@dataclass(frozen=True)
class InstallResult:
    files: tuple[str, ...]  # '/'-separated paths written, relative to the target
    skipped: tuple[str, ...]  # wheel members not installed (scripts, headers), as wheel paths
    overwritten: tuple[str, ...]  # paths a later wheel replaced (in sorted wheel order)


def _redact(text: str) -> str:
    """Hide `user:token@` in index URLs: pip's messages and our own end up in CI logs."""
    return _CREDENTIALS_RE.sub("***@", text)


def service_kind(service: Path) -> str:
    """`project` (pyproject.toml with [project] or [build-system], or setup.py) or `requirements`.

    A pyproject.toml holding only tool settings (ruff, black) does not make a folder a project.
    """
    pyproject = service / "pyproject.toml"
    if (service / "setup.py").is_file() or (
        pyproject.is_file() and _TOML_TABLE_RE.search(pyproject.read_text(encoding="utf-8"))
    ):
        return "project"
    if (service / "requirements.txt").is_file():
        return "requirements"
    raise DependencyError(
        f"{service} is neither a project nor a service folder: add a pyproject.toml with a "
        "[project] table, or list the service's dependencies in requirements.txt"
    )


def _hint(output: str) -> str:
    if re.search(
        r"NewConnectionError|Temporary failure in name resolution|Network is unre", output
    ):
        return (
            "the package index is unreachable: for an offline build pass --no-index "
            "--find-links DIR with a folder of wheels, or --index-url for a reachable mirror"
        )
    if "No matching distribution" in output or "Could not find a version" in output:
        return (
            "check the requirement's name and version; if it lives on a private index pass "
            "--index-url/--extra-index-url, or --find-links DIR for a folder of wheels"
        )
    if "ResolutionImpossible" in output or "conflicting dependencies" in output:
        return "relax the conflicting version constraints pip lists above"
    if "metadata-generation-failed" in output or "Failed building wheel" in output:
        return (
            "a project or source distribution failed to build: read the build backend's "
            "output above, install its build requirements, or pass --only-binary :all: to "
            "use wheels only for dependencies"
        )
    return "run the pip command above by hand to see the full output"


def _pip(python: str, args: Sequence[str], cwd: Path) -> None:
    cmd = [python, "-m", "pip", *args]
    # One stream, so pip's lines stay in the order pip wrote them.
    proc = subprocess.run(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if proc.returncode != 0:
        output = proc.stdout or ""
        tail = "\n".join(output.strip().splitlines()[-_PIP_TAIL_LINES:])
        shown = " ".join(["pip", *args])
        raise DependencyError(
            _redact(
                f"pip failed (exit status {proc.returncode}) running: {shown}\n"
                f"{tail}\nwhat to do: {_hint(output)}"
            )
        )


def _wheels_in(folder: Path) -> list[tuple[str, str, Path]]:
    out = []
    for path in sorted(folder.glob("*.whl")):
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename as exc:
            raise DependencyError(
                f"pip produced an unusable wheel name {path.name}: {exc}"
            ) from None
        out.append((str(name), str(version), path))
    return out


def _publish(staging: Path, wheelhouse: Path) -> list[tuple[str, str, Path]]:
    published = []
    for name, version, path in _wheels_in(staging):
        dest = wheelhouse / path.name
        os.replace(path, dest)
        published.append((name, version, dest))
    return published


def collect_wheels(
    service: str | Path,
    wheelhouse: str | Path,
    pip_args: Sequence[str] = (),
    *,
    extra_requirements: Sequence[str] = (),
    python: str = sys.executable,
) -> list[Wheel]:
    """Resolve and fetch `service`'s dependencies as wheels into `wheelhouse`.

    A project yields its own wheel too (built through PEP 517 by `pip wheel --no-deps`,
    `is_project=True`); its dependencies come from that wheel's metadata. A plain folder yields
    the wheels of its requirements.txt (paths in it are relative to the folder, as when running
    pip there). `extra_requirements` (what the governed artifact needs besides the service's
    own dependencies: the runtime's) are resolved together with them, so one consistent set comes
    out. `pip_args` go to every pip call. Returns wheels sorted by name.
    """
    service = Path(service).resolve()
    wheelhouse = Path(wheelhouse).resolve()
    if not service.is_dir():
        raise DependencyError(f"{service} is not a folder: pass the service's project folder")
    kind = service_kind(service)
    wheelhouse.mkdir(parents=True, exist_ok=True)
    project: tuple[str, str, Path] | None = None
    # Staging next to the wheelhouse: same filesystem, so publishing is an atomic rename.
    with tempfile.TemporaryDirectory(prefix=".instpy-pip-", dir=wheelhouse) as tmp:
        staging = Path(tmp)
        if kind == "project":
            own = staging / "own"
            _pip(python, ["wheel", *_PIP_COMMON, "--no-deps", "-w", str(own), *pip_args, "."],
                 service)  # fmt: skip
            built = _wheels_in(own)
            if len(built) != 1:
                raise DependencyError(
                    f"building {service} produced {len(built)} wheels, expected 1: "
                    "check the project's build configuration"
                )
            project = _publish(own, wheelhouse)[0]
            target = [str(project[2])]
        else:
            target = ["-r", "requirements.txt"]
        deps = staging / "deps"
        _pip(python, ["wheel", *_PIP_COMMON, "-w", str(deps), *pip_args, *target,
                      *extra_requirements], service)
        found = _publish(deps, wheelhouse)
    wheels = {(n, v): Wheel(n, v, p) for n, v, p in found}
    if project is not None:
        name, version, path = project
        wheels[(name, version)] = Wheel(name, version, path, is_project=True)
    return sorted(wheels.values())


# --------------------------------------------------------------------------- install


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _safe_member(name: str, wheel: Path) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise DependencyError(f"{wheel.name} has an unsafe member path {name!r}: refusing it")
    return path


def _read_wheel(wheel: Path) -> tuple[str, dict[str, bytes], dict[str, int], int]:
    """(dist-info dir, members by name, Unix modes, newest member's mtime); RECORD checked."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            members = {i.filename: zf.read(i) for i in infos}
            modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in infos}
            stamp = max(
                (calendar.timegm((*i.date_time, 0, 0, 0)) for i in infos), default=315532800
            )
    except (OSError, zipfile.BadZipFile) as exc:
        raise DependencyError(f"cannot read wheel {wheel}: {exc}; fetch it again") from None
    dist_infos = {n.split("/")[0] for n in members if n.split("/")[0].endswith(".dist-info")}
    if len(dist_infos) != 1:
        raise DependencyError(f"{wheel.name} has {len(dist_infos)} .dist-info folders, expected 1")
    dist_info = dist_infos.pop()
    record = members.get(f"{dist_info}/RECORD")
    if record is None:
        raise DependencyError(f"{wheel.name} has no RECORD: it is not a valid wheel")
    for row in csv.reader(io.StringIO(record.decode("utf-8"))):
        # Only sha256 is checked: it is what every current wheel builder writes.
        checkable = len(row) >= 2 and row[1].startswith("sha256=") and row[0] in members
        if checkable and _record_hash(members[row[0]]) != row[1]:
            raise DependencyError(
                f"{wheel.name}: {row[0]} does not match its RECORD hash; the wheel is "
                "damaged or was edited without updating RECORD; fetch or rebuild it"
            )
    return dist_info, members, modes, stamp


def _destination(name: str, dist_info: str) -> str | None:
    """Where a wheel member goes in the tree, or None to skip it."""
    data_dir = dist_info.removesuffix(".dist-info") + ".data"
    head, _, rest = name.partition("/")
    if head != data_dir:
        return name
    scheme, _, rel = rest.partition("/")
    # With --target there is no prefix: importable files go to the root, data files to the root
    # as pip's "home" scheme does; scripts need a bin/ on PATH and headers a compiler: skipped.
    return rel if scheme in ("purelib", "platlib", "data") and rel else None


def install_wheels(wheels: Iterable[Wheel | Path], target: str | Path) -> InstallResult:
    """Unpack `wheels` into `target` like `pip install --target` (no scripts, no bytecode).

    dist-info folders are kept with INSTALLER=instpy and a RECORD of the installed paths, so
    `importlib.metadata` finds every version. Wheels are installed in sorted (name, version)
    order; a file installed twice keeps the later wheel's content and is listed in
    `overwritten`. File mtimes are SOURCE_DATE_EPOCH when set, else the wheel's newest member.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    paths = sorted((w.path if isinstance(w, Wheel) else Path(w) for w in wheels), key=_sort_key)
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    written: dict[str, str] = {}
    skipped: list[str] = []
    overwritten: list[str] = []
    for wheel in paths:
        dist_info, members, modes, stamp = _read_wheel(wheel)
        mtime = int(epoch) if epoch.isdigit() else stamp
        installed: list[tuple[str, bytes]] = []
        for name in sorted(members):
            _safe_member(name, wheel)
            if name == f"{dist_info}/RECORD":
                continue
            dest = _destination(name, dist_info)
            if dest is None:
                skipped.append(f"{wheel.name}:{name}")
                continue
            installed.append((dest, members[name]))
            _write(target / dest, members[name], 0o755 if modes[name] & 0o111 else 0o644, mtime)
            if dest in written and written[dest] != wheel.name:
                overwritten.append(dest)
            written[dest] = wheel.name
        installer = b"instpy\n"
        installed.append((f"{dist_info}/INSTALLER", installer))
        _write(target / dist_info / "INSTALLER", installer, 0o644, mtime)
        rows = [(p, _record_hash(d), str(len(d))) for p, d in sorted(installed)]
        rows.append((f"{dist_info}/RECORD", "", ""))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        _write(target / dist_info / "RECORD", buf.getvalue().encode(), 0o644, mtime)
        written[f"{dist_info}/INSTALLER"] = written[f"{dist_info}/RECORD"] = wheel.name
    return InstallResult(tuple(sorted(written)), tuple(skipped), tuple(sorted(set(overwritten))))


def _sort_key(path: Path) -> tuple[str, str, str]:
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename:
        raise DependencyError(
            f"{path.name} is not a wheel file name (NAME-VERSION-PY-ABI-PLATFORM.whl)"
        ) from None
    return (str(name), str(version), path.name)


def _write(path: Path, data: bytes, mode: int, mtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_dir():
        raise DependencyError(f"{path} is a link or a folder in the target; remove it and retry")
    tmp = path.with_name(f".{path.name}.instpy-tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)

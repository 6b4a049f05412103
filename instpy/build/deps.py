"""Collect a service's dependencies as wheels with pip, and install wheels into a tree.

`collect_wheels` runs pip in a subprocess (`python -m pip wheel`), the same resolver, indexes,
caches and configuration (pip.conf, PIP_* variables) the team already uses; pip options such as
`--no-index --find-links DIR`, `--index-url`, `--only-binary :all:` pass through unchanged.
Each pip run writes into a fresh staging folder, so the result lists exactly the wheels this
resolution produced even when the wheelhouse holds older ones.

`collect_for_target` does the same for another machine (`instpy.build.target.Target`): pip
downloads binary wheels for the target's tags. pip evaluates environment markers for the machine
it runs on, whatever `--platform`/`--python-version` say, so requirement lines and wheel metadata
are evaluated here for the target: a requirement false on the target is left out, one true only
on the target is added and resolved again, a wheel only this machine would need is dropped.

`install_wheels` unpacks wheels into a folder the way `pip install --target` lays it out, without
pip, deterministically (sorted order, fixed modes, mtimes from SOURCE_DATE_EPOCH or the wheel),
so the compiler's emit can reuse it for the `tree` format.

Exception tree::

    RuntimeError
     └── DependencyError    pip failed (its own message is included), or a wheel is unusable
          └── NoWheelError  a cross-target build found no wheel of a dependency for the target
"""

from __future__ import annotations

import base64
import calendar
import csv
import email.parser
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from instpy.build.target import Target

__all__ = [
    "DependencyError",
    "InstallResult",
    "NoWheelError",
    "TargetCollection",
    "Wheel",
    "collect_for_target",
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


class NoWheelError(DependencyError):
    """No wheel of `requirement` exists for the target (cross-target builds take wheels only)."""

    def __init__(self, message: str, requirement: str) -> None:
        super().__init__(message)
        self.requirement = requirement


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


def _pip(python: str, args: Sequence[str], cwd: Path, target: Target | None = None) -> None:
    cmd = [python, "-m", "pip", *args]
    # One stream, so pip's lines stay in the order pip wrote them.
    proc = subprocess.run(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if proc.returncode != 0:
        output = proc.stdout or ""
        if target is not None:
            _raise_no_wheel(output, target)
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


# --------------------------------------------------------------------------- cross-target

_MAX_ROUNDS = 4  # marker fix-ups: each round adds what the target needs and pip left out
_NO_MATCH_RE = re.compile(r"No matching distribution found for (\S+)")
_VERSIONS_RE = re.compile(r"satisfies the requirement (\S+) \(from versions: ([^)]*)\)")
_OTHER_PYTHON_RE = re.compile(r"^.*require a different python version.*$", re.M)


@dataclass(frozen=True)
class TargetCollection:
    wheels: list[Wheel]  # sorted by name, all tagged for the target
    added: tuple[str, ...]  # requirements true on the target that pip (on this machine) left out
    dropped: tuple[str, ...]  # wheels pip fetched for this machine's markers; not on the target
    ignored: tuple[str, ...]  # top-level requirements whose markers are false on the target


def _raise_no_wheel(output: str, target: Target) -> None:
    found = _NO_MATCH_RE.search(output)
    if found is None:
        return
    requirement = found.group(1)
    try:
        name = str(canonicalize_name(Requirement(requirement).name))
    except InvalidRequirement:
        name = requirement
    versions = _VERSIONS_RE.search(output)
    seen = (versions.group(2).strip() if versions else "") or "none"
    other = _OTHER_PYTHON_RE.search(output)
    tail = "\n".join(output.strip().splitlines()[-6:])
    raise NoWheelError(
        _redact(
            f"no wheel of {requirement} for the target {target.describe()}: pip found no "
            f"distribution of {name} with the target's tags (tried: {target.tags_tried()}). "
            f"Versions of {name} with a usable file for the target: {seen}."
            + (f" {other.group(0).removeprefix('ERROR: ').strip()}." if other else "")
            + "\nwhy: a cross-target build takes binary wheels only (--only-binary=:all:): "
            "building a source distribution here would give this machine's binaries.\n"
            f"what to do: require a version of {name} that publishes a wheel for "
            f"{target.platform} and Python {target.python_version} (see its files on the "
            f"index), build a wheel for the target and pass --find-links DIR, leave {name} "
            "out for this target with an environment marker, or pick another "
            f"--target-platform/--target-python/--target-libc.\npip said:\n{tail}"
        ),
        requirement,
    )


def _evaluate(req: Requirement, env: Mapping[str, str], extras: Iterable[str] = ("",)) -> bool:
    if req.marker is None:
        return True
    try:
        return any(req.marker.evaluate({**env, "extra": extra}) for extra in extras)
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
        raise DependencyError(
            f"cannot evaluate the marker of {req} for the target: {exc}; fix the marker"
        ) from None


def _unmarked(req: Requirement) -> str:
    bare = Requirement(str(req))
    bare.marker = None
    return str(bare)


def _logical_lines(text: str) -> list[str]:
    """requirements.txt lines with continuations joined and comments removed, as pip reads them."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line = re.sub(r"(^|\s+)#.*$", "", pending + raw).strip()
        pending = ""
        if line:
            out.append(line)
    return out


def _requirements_for_target(
    path: Path, env: Mapping[str, str], ignored: list[str], roots: list[Requirement],
    seen: frozenset[Path] = frozenset(),
) -> list[str]:
    """The lines of `path` (and the files it includes) with markers decided for the target.

    Requirement lines lose their marker (true) or are left out (false, listed in `ignored`);
    options, URLs, paths and editable lines pass through unchanged.
    """
    path = path.resolve()
    if path in seen or not path.is_file():
        raise DependencyError(f"{path}: requirements file missing or included twice; fix the -r")
    out: list[str] = []
    for line in _logical_lines(path.read_text(encoding="utf-8")):
        option = re.match(r"^(-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)$", line)
        if option is not None:
            included = path.parent / option.group(2)
            if option.group(1) in ("-r", "--requirement"):
                out += _requirements_for_target(included, env, ignored, roots, seen | {path})
            else:
                out.append(f"{option.group(1)} {included.resolve()}")
            continue
        spec, sep, options = line.partition(" --")
        try:
            req = None if line.startswith("-") else Requirement(spec)
        except InvalidRequirement:
            req = None
        if req is None:
            out.append(line)
        elif _evaluate(req, env):
            roots.append(req)
            out.append(_unmarked(req) + sep + options)
        else:
            ignored.append(line)
    return out


def _metadata(wheel: Path) -> tuple[str, list[Requirement], str | None]:
    """(normalised name, Requires-Dist, Requires-Python) from a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(names) != 1:
            raise DependencyError(f"{wheel.name} has {len(names)} METADATA files, expected 1")
        meta = email.parser.Parser().parsestr(zf.read(names[0]).decode("utf-8"))
    try:
        requires = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    except InvalidRequirement as exc:
        raise DependencyError(f"{wheel.name}: invalid Requires-Dist ({exc})") from None
    return canonicalize_name(meta["Name"] or ""), requires, meta["Requires-Python"]


def _closure(
    dists: Mapping[str, list[Requirement]], roots: Sequence[Requirement], env: Mapping[str, str]
) -> tuple[set[str], dict[str, list[Requirement]]]:
    """The distributions the target needs (markers and extras for the target) and the missing."""
    reached: dict[str, set[str]] = {}
    missing: dict[str, list[Requirement]] = {}
    queue = list(roots)
    while queue:
        req = queue.pop()
        name = canonicalize_name(req.name)
        if name not in dists:
            missing.setdefault(name, []).append(req)
            continue
        extras = {canonicalize_name(e) for e in req.extras}
        if name in reached and extras <= reached[name]:
            continue
        new = extras - reached.get(name, set()) | ({""} if name not in reached else set())
        reached.setdefault(name, set()).update(extras)
        queue += [r for r in dists[name] if _evaluate(r, env, new)]
    return set(reached), missing


def _combined(reqs: list[Requirement]) -> str:
    """One requirement line asking for what every requiring edge asks."""
    url = next((r for r in reqs if r.url), None)
    if url is not None:
        return _unmarked(url)
    extras = sorted({e for r in reqs for e in r.extras})
    spec = SpecifierSet()
    for r in reqs:
        spec &= r.specifier
    return reqs[0].name + (f"[{','.join(extras)}]" if extras else "") + str(spec)


def _check_tags(wheel: Path, target: Target) -> None:
    _, _, _, tags = parse_wheel_filename(wheel.name)
    if not tags & target.tags:
        raise DependencyError(
            f"{wheel.name} is not for the target {target.describe()} (its tags: "
            f"{', '.join(sorted(str(t) for t in tags))}); a wheel built on this machine cannot "
            "ship to the target: build it for the target and pass --find-links DIR"
        )


def _check_requires_python(wheel: Path, requires_python: str | None, target: Target) -> None:
    if not requires_python:
        return
    full = f"{target.python_version}.{target.micro}"
    try:
        ok = SpecifierSet(requires_python).contains(full, prereleases=True)
    except InvalidSpecifier:
        return
    if not ok:
        raise DependencyError(
            f"{wheel.name} requires Python {requires_python}, the target has {full}: change "
            "the project's requires-python or --target-python"
        )


def collect_for_target(
    service: str | Path,
    wheelhouse: str | Path,
    target: Target,
    pip_args: Sequence[str] = (),
    *,
    extra_requirements: Sequence[str] = (),
    python: str = sys.executable,
) -> TargetCollection:
    """`collect_wheels` for another machine: the target's binary wheels, markers for the target.

    A project's own wheel is built here (PEP 517) and must be pure or tagged for the target; its
    dependencies, requirements.txt lines and `extra_requirements` are evaluated for the target.
    A dependency with no wheel for the target raises NoWheelError naming it and the tags tried.
    """
    service = Path(service).resolve()
    wheelhouse = Path(wheelhouse).resolve()
    if not service.is_dir():
        raise DependencyError(f"{service} is not a folder: pass the service's project folder")
    kind = service_kind(service)
    env = target.marker_environment()
    wheelhouse.mkdir(parents=True, exist_ok=True)
    ignored: list[str] = []
    roots: list[Requirement] = []
    project: Path | None = None
    with tempfile.TemporaryDirectory(prefix=".instpy-pip-", dir=wheelhouse) as tmp:
        staging = Path(tmp)
        if kind == "project":
            own = staging / "own"
            # The project's Requires-Python is checked against the target below, not this Python.
            _pip(python, ["wheel", *_PIP_COMMON, "--no-deps", "--ignore-requires-python", "-w",
                          str(own), *pip_args, "."], service)  # fmt: skip
            built = sorted(own.glob("*.whl"))
            if len(built) != 1:
                raise DependencyError(
                    f"building {service} produced {len(built)} wheels, expected 1: "
                    "check the project's build configuration"
                )
            project = built[0]
            _check_tags(project, target)
            name, requires, requires_python = _metadata(project)
            _check_requires_python(project, requires_python, target)
            roots.append(Requirement(name))
            ignored += [str(r) for r in requires if not _evaluate(r, env)]
            lines = [_unmarked(r) for r in requires if _evaluate(r, env)]
        else:
            lines = _requirements_for_target(service / "requirements.txt", env, ignored, roots)
        for text in extra_requirements:
            req = Requirement(text)
            if _evaluate(req, env):
                roots.append(req)
                lines.append(_unmarked(req))
        request = staging / "requirements.txt"
        deps = staging / "deps"
        added: dict[str, str] = {}
        for _ in range(_MAX_ROUNDS):
            request.write_text("".join(f"{line}\n" for line in [*lines, *added.values()]))
            _pip(python, ["download", *_PIP_COMMON, *target.pip_args(), "-d", str(deps),
                          *pip_args, "-r", str(request)], service, target)  # fmt: skip
            found = {p: _metadata(p) for p in sorted(deps.glob("*.whl"))}
            dists = {name: requires for name, requires, _ in found.values()}
            if project is not None:
                dists[roots[0].name] = requires
            wanted = [*roots, *(Requirement(a) for a in added.values())]
            # What pip reached from lines it could not name (URLs, paths, -e) has no requirer.
            required = {canonicalize_name(r.name) for reqs in dists.values() for r in reqs}
            wanted += [Requirement(n) for n in dists if n not in required]
            needed, missing = _closure(dists, wanted, env)
            if not missing:
                break
            added.update({name: _combined(reqs) for name, reqs in missing.items()})
        else:
            raise DependencyError(
                f"the target's markers still need {', '.join(sorted(missing))} after "
                f"{_MAX_ROUNDS} rounds of pip; add them to the requirements explicitly"
            )
        dropped = []
        for path, (name, _, requires_python) in found.items():
            if name not in needed:
                dropped.append(path.name)
                path.unlink()
                continue
            _check_tags(path, target)
            _check_requires_python(path, requires_python, target)
        published = _publish(deps, wheelhouse)
        if project is not None:
            own_wheel = _publish(project.parent, wheelhouse)[0]
    wheels = {(n, v): Wheel(n, v, p) for n, v, p in published}
    if project is not None:
        n, v, p = own_wheel
        wheels[(n, v)] = Wheel(n, v, p, is_project=True)
    return TargetCollection(
        sorted(wheels.values()), tuple(added.values()), tuple(sorted(dropped)), tuple(ignored)
    )


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

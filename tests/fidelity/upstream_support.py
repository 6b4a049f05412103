"""Run a library's own upstream test suite against the original and against its governed build.

    PyPI sdist ──► tests/ (package source removed, so the suite imports the installed package)
    uv.lock + the venv's versions ──► constraints ──pip wheel──► one wheelhouse (fetched once)
        ├─► deps/      the suite's test requirements and the original package   (pip --target)
        └─► governed/  `instpy build --govern` of a service needing only the package (offline)
    throwaway venv (no site-packages) runs pytest twice:  PYTHONPATH=deps  vs  governed:deps

The package and its dependencies are pinned to what this environment has installed; the test-only
requirements to the suite's own uv.lock, so the suite runs in the environment its authors lock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the fidelity tests skip on 3.10 (see test_upstream_suites.py)
    tomllib = None

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("fidelity_probe.py")
SUITE_TIMEOUT_S = 900
PIP_TIMEOUT_S = 600

# Rules for resources the suites never request, and a limit far above any test's traffic on one
# they do request, so the whole rule chain runs on every request and nothing is ever blocked.
GOVERNANCE = """\
rules:
  - resource: "GET /instpy-fidelity/never-requested"
    flow: {qps: 1}
    fallback: {status: 503, body: "fidelity rule fired"}
  - resource: "POST /instpy-fidelity/never-requested"
    concurrency: {max: 1}
    circuit_breaker: {strategy: error_ratio, threshold: 0.5, min_requests: 1}
  - resource: "GET http://instpy-fidelity.invalid/never"
    degrade: {status: 503, body: "fidelity degrade fired"}
  - resource: "GET /"
    flow: {qps: 1000000}
    concurrency: {max: 100000}
    hot_param: {from: query, name: instpy_fidelity_unused, qps: 1}
metrics:
  inbound: true
  all_resources: true
"""
FIDELITY_RULES = (
    "GET /instpy-fidelity/never-requested",
    "POST /instpy-fidelity/never-requested",
    "GET http://instpy-fidelity.invalid/never",
    "GET /",
)


@dataclass(frozen=True)
class Suite:
    """One upstream suite: where its test requirements are declared, and what is tooling."""

    distribution: str  # the PyPI name, also the import name here
    rules: str  # the shipped injection-rule file that governs it (under rules/)
    group: str  # the pyproject dependency group listing the test requirements
    tooling: frozenset[str] = frozenset()  # names in that group the tests never import
    tests: str = "tests"

    @property
    def version(self) -> str:
        return metadata.version(self.distribution)


@dataclass
class Prepared:
    suite: Suite
    root: Path  # the unpacked sdist, package source removed
    deps: Path
    governed: Path
    python: Path  # the throwaway venv's interpreter
    probe: Path  # the folder holding fidelity_probe.py
    governance: Path
    key: str = field(repr=False)
    manifest: dict[str, object] = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class SuiteRun:
    label: str
    outcomes: dict[str, str] = field(repr=False)
    exitstatus: int
    package_file: str | None
    governance: dict[str, object] | None = field(repr=False)
    seconds: float
    output: str = field(repr=False)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for outcome in self.outcomes.values():
            out[outcome] = out.get(outcome, 0) + 1
        return dict(sorted(out.items()))


def _run(cmd: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
         timeout: float = PIP_TIMEOUT_S) -> str:
    done = subprocess.run(list(cmd), cwd=cwd, env=dict(env) if env is not None else None,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n"
                           f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout + done.stderr


def _pip(*args: str, cwd: Path | None = None) -> str:
    return _run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input",
                 "-q", *args], cwd=cwd)


def mint_key(namespace: str) -> str:
    done = subprocess.run([sys.executable, "-m", "instpy", "license", "new", "--namespace",
                           namespace], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]  # commentary goes to stderr


# -- versions ------------------------------------------------------------------------------


def installed_closure(name: str, extras: Sequence[str] = ()) -> dict[str, str]:
    """`name` and everything it requires (with `extras`), as installed here: {name: version}."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(name, tuple(extras))]
    while todo:
        current, wanted = todo.pop()
        if (canonicalize_name(current), wanted) in seen:
            continue
        seen.add((canonicalize_name(current), wanted))
        try:
            dist = metadata.distribution(current)
        except metadata.PackageNotFoundError:
            continue  # not installed here: the lock (or pip) decides its version
        pins[canonicalize_name(current)] = dist.version
        envs = [{"extra": e} for e in ("", *wanted)]
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, tuple(sorted(req.extras))))
    return pins


def lock_pins(lock: Path) -> dict[str, str]:
    """The uv.lock's registry versions that apply to this interpreter: {name: version}."""
    assert tomllib is not None
    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    pins: dict[str, str] = {}
    for pkg in data.get("package", []):
        if "registry" not in pkg.get("source", {}) or "version" not in pkg:
            continue
        forks = pkg.get("resolution-markers")
        if forks and not any(Marker(m).evaluate() for m in forks):
            continue
        pins[canonicalize_name(pkg["name"])] = str(pkg["version"])
    return pins


def suite_requirements(suite: Suite, root: Path) -> tuple[list[str], tuple[str, ...]]:
    """The suite's dependency group as requirements (tooling dropped), and the package's extras
    the group asks for (`starlette[full]`)."""
    assert tomllib is not None
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    group = project.get("dependency-groups", {}).get(suite.group)
    if not group:
        raise RuntimeError(f"{suite.distribution}'s pyproject.toml has no dependency group "
                           f"{suite.group!r}: the suite's layout changed, update the Suite entry")
    reqs: list[str] = []
    extras: tuple[str, ...] = ()
    for text in group:
        if not isinstance(text, str):
            continue  # {include-group = ...}
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate():
            continue
        if name == canonicalize_name(suite.distribution):
            extras = tuple(sorted(req.extras))
            continue
        if name in suite.tooling:
            continue
        reqs.append(f"{req.name}{'[' + ','.join(sorted(req.extras)) + ']' if req.extras else ''}")
    return reqs, extras


_UNAVAILABLE = (
    re.compile(r"no matching distributions available for your environment:\n((?:\s+\S+\n?)+)"),
    re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)"),
)


def _unavailable(output: str) -> set[str]:
    names: set[str] = set()
    for pattern in _UNAVAILABLE:
        for match in pattern.finditer(output):
            names.update(canonicalize_name(n) for n in match.group(1).split())
    return names


def fetch_wheels(wheels: Path, constraints: Path, pins: dict[str, str], reqs: Sequence[str],
                 fixed: Mapping[str, str]) -> None:
    """`pip wheel` everything at once under `pins` as constraints. A lock pin this index does
    not serve (a mirror lagging behind, a yanked release) is dropped and pip decides that one;
    the `fixed` pins (what this environment has installed) are never dropped."""
    pins = dict(pins)
    for _ in range(10):
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
        done = subprocess.run(
            [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "wheel",
             "--progress-bar", "off", "-w", str(wheels), "-c", str(constraints), *reqs,
             *(f"{n}=={v}" for n, v in sorted(fixed.items()))],
            capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
        if done.returncode == 0:
            return
        output = done.stdout + done.stderr
        drop = {n for n in _unavailable(output) if n in pins and n not in fixed}
        if not drop:
            raise RuntimeError(f"pip wheel failed ({done.returncode}):\n{output[-6000:]}")
        for name in drop:
            print(f"fidelity: {name}=={pins.pop(name)} (the suite's lock) is not on this index; "
                  "letting pip choose its version")
    raise RuntimeError("pip wheel kept failing on unavailable pins; see the lines above")


# -- preparation ---------------------------------------------------------------------------


def unpack_sdist(suite: Suite, work: Path) -> Path:
    sdists = work / "sdist"
    _pip("download", "--no-binary", ":all:", "--no-deps", "-d", str(sdists),
         f"{suite.distribution}=={suite.version}")
    archive = next(sdists.glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        if sys.version_info >= (3, 12):
            tar.extractall(work, filter="data")
        else:
            tar.extractall(work)  # PyPI's own sdist of a pinned version
    root = next(p for p in work.iterdir() if p.is_dir() and p.name.lower().startswith(
        suite.distribution.lower() + "-"))
    # The suite must import the package under test, not the source next to it.
    for source in ("src", suite.distribution):
        if (root / source).is_dir():
            shutil.rmtree(root / source)
    return root


def prepare(suite: Suite, work: Path, key: str) -> Prepared:
    timings: dict[str, float] = {}
    start = time.monotonic()
    root = unpack_sdist(suite, work)
    reqs, extras = suite_requirements(suite, root)
    package = installed_closure(suite.distribution)
    runtime = installed_closure("pyyaml") | installed_closure("psutil")
    pins = lock_pins(root / "uv.lock") if (root / "uv.lock").is_file() else {}
    pins |= package | runtime  # extras the tests want stay at the lock's versions
    constraints = work / "constraints.txt"
    pinned = f"{suite.distribution}{'[' + ','.join(extras) + ']' if extras else ''}" \
             f"=={suite.version}"
    timings["sdist"] = time.monotonic() - start

    # One resolution and one download for everything both runs and the build need.
    start = time.monotonic()
    wheels = work / "wheels"
    fetch_wheels(wheels, constraints, pins, [pinned, *reqs], fixed=package | runtime)
    timings["wheels"] = time.monotonic() - start

    start = time.monotonic()
    deps = work / "deps"
    _pip("install", "--no-index", "--find-links", str(wheels), "--target", str(deps),
         "-c", str(constraints), pinned, *reqs)
    timings["deps"] = time.monotonic() - start

    start = time.monotonic()
    service = work / "service"
    service.mkdir()
    (service / "requirements.txt").write_text(
        "".join(f"{n}=={v}\n" for n, v in sorted(package.items())))
    governed = work / "governed"
    _run([sys.executable, "-m", "instpy", "build", str(service), "--govern", "--no-cache",
          "--no-index", "--find-links", str(wheels), "-o", str(governed)],
         cwd=REPO, env={**os.environ, "INSTPY_LICENSE_KEY": key})
    manifest = json.loads((governed / "instpy-manifest.json").read_text())
    timings["build"] = time.monotonic() - start

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    probe = work / "probe"
    probe.mkdir()
    shutil.copy(PROBE, probe / PROBE.name)
    governance = work / "governance.yaml"
    governance.write_text(GOVERNANCE)
    return Prepared(suite, root, deps, governed, python, probe, governance, key, manifest,
                    timings)


# -- running -------------------------------------------------------------------------------


_SCRUB = re.compile(r"^(PYTHON|PYTEST_|INSTPY_|COV_CORE_|VIRTUAL_ENV$)")


def _start(prep: Prepared, label: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    work = prep.root.parent
    report, log = work / f"report-{label}.json", work / f"{label}.log"
    path = [str(prep.governed)] if label == "governed" else []
    path += [str(prep.deps), str(prep.probe)]
    env = {k: v for k, v in os.environ.items() if not _SCRUB.match(k)}
    env.update(
        PYTHONPATH=os.pathsep.join(path),
        PYTHONDONTWRITEBYTECODE="1",
        FIDELITY_REPORT=str(report),
        FIDELITY_PACKAGE=prep.suite.distribution,
        INSTPY_GOVERNANCE=str(prep.governance),
        INSTPY_LICENSE_KEY=prep.key,
    )
    # -P (PYTHONSAFEPATH): the suite's folder is not put first on sys.path by `-m`.
    cmd = [str(prep.python), "-P", "-m", "pytest", prep.suite.tests, "-p", "fidelity_probe",
           "-p", "no:cacheprovider", "-q", "--no-header", "-rN", "--color=no",
           f"--basetemp={work / ('tmp-' + label)}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=prep.root, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    return proc, report, log


def run_both(prep: Prepared) -> tuple[SuiteRun, SuiteRun]:
    """Run the suite against the original and the governed package at the same time (two
    processes: the suites are single-threaded and CI has two cores)."""
    started = {label: _start(prep, label) for label in ("original", "governed")}
    begin = time.monotonic()
    runs: dict[str, SuiteRun] = {}
    try:
        for label, (proc, report, log) in started.items():
            remaining = max(1.0, SUITE_TIMEOUT_S - (time.monotonic() - begin))
            returncode = proc.wait(timeout=remaining)
            seconds = time.monotonic() - begin
            output = log.read_text(errors="replace")
            if not report.is_file():
                raise RuntimeError(f"the {label} run of {prep.suite.distribution}'s suite wrote "
                                   f"no report (exit {returncode}):\n{output[-6000:]}")
            data = json.loads(report.read_text())
            runs[label] = SuiteRun(label, dict(data["outcomes"]), int(data["exitstatus"]),
                                   data["package_file"], data["governance"], seconds, output)
    finally:
        for proc, _, _ in started.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return runs["original"], runs["governed"]


def differences(original: SuiteRun, governed: SuiteRun) -> list[str]:
    """One line per test whose outcome differs (or that only one run has)."""
    lines = []
    for nodeid in sorted(original.outcomes.keys() | governed.outcomes.keys()):
        a = original.outcomes.get(nodeid, "absent")
        b = governed.outcomes.get(nodeid, "absent")
        if a != b:
            lines.append(f"{nodeid}: original {a}, governed {b}")
    return lines

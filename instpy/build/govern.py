"""`instpy build --govern`: a service and the libraries it uses, rewritten and emitted whole.

    service folder ──pip wheel──► wheelhouse ──► tree: install side by side, scan, inject, emit
    (pyproject or requirements)                └► wheel: rewrite matching wheels, add the runtime

The shipped rules (`rules/*.yaml`, installed as `instpy/rules`) are added to the user's rules, so
the frameworks' own choke points are rewritten, not only the service's code. The manifest
(`instpy-manifest.json`) records the tool, rules, targets, discovered endpoints, distributions and
the license binding — the key's fingerprint, never the key.

With a target (`--target-platform/--target-python`), pip fetches the target's wheels (runtime's
psutil and PyYAML included), markers are decided for the target, the rewritten files and the
runtime are checked against the target's grammar, and the manifest's `target` says what was
built for; a native build records this machine there.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import instpy
from instpy import __version__
from instpy.build.deps import (
    TargetCollection,
    Wheel,
    collect_for_target,
    collect_wheels,
    install_wheels,
    service_kind,
)
from instpy.build.emit import emit_tree
from instpy.build.endpoints import discover_endpoints
from instpy.build.errors import EmitError
from instpy.build.files import atomic_write
from instpy.build.pipeline import BuildResult, run
from instpy.build.plan import PlannedTarget, Unmatched
from instpy.build.rules import RuleSet, load_rules
from instpy.build.runtime_pkg import (
    RUNTIME_DISTRIBUTION,
    RUNTIME_REQUIREMENTS,
    runtime_files,
    runtime_metadata,
)
from instpy.build.syntax_check import check_syntax
from instpy.build.target import Target, native_target
from instpy.build.wheel import add_requirement, rewrite_wheel, write_runtime_wheel
from instpy.runtime.license import LicenseBinding

MANIFEST_NAME = "instpy-manifest.json"
# Folders of a plain service that are not part of what it ships.
_NOT_SHIPPED = {".git", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".mypy_cache"}


def shipped_rules() -> Path:
    """The rules that govern the frameworks, installed inside the package as `instpy/rules`."""
    return Path(instpy.__file__).parent / "rules"


@dataclass(frozen=True)
class GovernOptions:
    service: Path
    out: Path
    fmt: str  # "tree" | "wheel"
    binding: LicenseBinding
    rule_paths: tuple[Path, ...] = ()
    pip_args: tuple[str, ...] = ()
    cache_dir: Path | None = None
    jobs: int = 1
    progress: bool = False
    target: Target | None = None  # None: this machine, pip as configured


@dataclass
class GovernReport:
    manifest: dict[str, object]
    targets: list[PlannedTarget]
    unmatched: list[Unmatched]


def build_governed(opts: GovernOptions) -> GovernReport:
    service, out = opts.service.resolve(), opts.out.resolve()
    if out == service or service in out.parents:
        raise EmitError(
            f"output {out} is inside the service {service}; "
            "choose a folder outside it (e.g. ../out)"
        )
    rules = load_rules([shipped_rules(), *opts.rule_paths])
    app_name = service.name
    binding: dict[str, object] = {
        **opts.binding.to_dict(), "app_name": app_name, "tool": f"instpy {__version__}",
    }
    with tempfile.TemporaryDirectory(prefix="instpy-govern-") as tmp:
        work = Path(tmp)
        collected: TargetCollection | None = None
        if opts.target is None:
            wheels = collect_wheels(service, work / "wheelhouse", [*opts.pip_args],
                                    extra_requirements=RUNTIME_REQUIREMENTS)  # fmt: skip
        else:
            collected = collect_for_target(service, work / "wheelhouse", opts.target,
                                           [*opts.pip_args],
                                           extra_requirements=RUNTIME_REQUIREMENTS)  # fmt: skip
            wheels = collected.wheels
        if opts.fmt == "tree":
            results, rewritten = _tree(opts, service, work / "tree", wheels, rules, binding)
        else:
            results, rewritten = _wheelhouse(opts, wheels, rules, binding)
        target_info = _target_info(opts.target, collected, results, binding)
    targets = [t for r in results for t in r.plan.targets]
    hit = {name for t in targets for name in t.rules}
    unmatched = _merge_unmatched(results, hit)
    manifest: dict[str, object] = {
        "tool": f"instpy {__version__}",
        "format": opts.fmt,
        "app_name": app_name,
        "service_kind": service_kind(service),
        "license": opts.binding.to_dict(),
        "rules": {"digest": rules.digest, "files": [Path(f).name for f in rules.files],
                  "names": sorted(r.name for r in rules.rules)},
        "distributions": [
            {"name": w.name, "version": w.version, "wheel": w.path.name,
             "rewritten": w.path.name in rewritten, "project": w.is_project}
            for w in wheels
        ],
        "targets": [{"fingerprint": t.fingerprint, "file": t.file, "line": t.line,
                     "rules": list(t.rules)} for t in targets],
        "unmatched": [{"rule": u.rule, "source": Path(u.source).name, "reason": u.reason}
                      for u in unmatched],
        "endpoints": discover_endpoints(service).to_dict(),
        "target": target_info,
    }
    atomic_write(out / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())
    return GovernReport(manifest, targets, unmatched)


def _target_info(
    target: Target | None, collected: TargetCollection | None, results: Sequence[BuildResult],
    binding: dict[str, object],
) -> dict[str, object] | None:
    """The manifest's `target`: what the artifact is for, and how it was checked for it."""
    if target is None or collected is None:
        native = native_target()
        return None if native is None else native.to_manifest()
    # What the build wrote itself: rewritten files and the runtime (the rest is the wheels' own).
    emitted: dict[str, bytes] = {}
    for result in results:
        wheel = result.plan.root if result.plan.root.endswith(".whl") else ""
        emitted.update({f"{wheel}:{rel}" if wheel else rel: d for rel, d in result.outputs.items()})
    emitted.update(runtime_files(binding))
    grammar = check_syntax(emitted, target.python)
    return {
        **target.to_manifest(),
        "markers": {"added": list(collected.added), "dropped": list(collected.dropped),
                    "ignored": list(collected.ignored)},
        "syntax_check": {"grammar": grammar.version, "files": grammar.files,
                         "note": grammar.note},
    }


def _merge_unmatched(results: Sequence[BuildResult], hit: set[str]) -> list[Unmatched]:
    """A rule is unmatched only if no part of the build matched it (first reason kept)."""
    seen: dict[str, Unmatched] = {}
    for result in results:
        for u in result.plan.unmatched:
            if u.rule not in hit:
                seen.setdefault(u.rule, u)
    return sorted(seen.values(), key=lambda u: u.rule)


def _copy_service(service: Path, dest: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _NOT_SHIPPED or n.endswith((".pyc", ".egg-info"))}

    shutil.copytree(service, dest, ignore=ignore, dirs_exist_ok=True)


def _tree(
    opts: GovernOptions, service: Path, staging: Path, wheels: list[Wheel], rules: RuleSet,
    binding: dict[str, object],
) -> tuple[list[BuildResult], set[str]]:
    install_wheels(wheels, staging)
    if service_kind(service) != "project":
        _copy_service(service, staging)
    result = run(staging, rules, cache_dir=opts.cache_dir, jobs=opts.jobs, progress=opts.progress)
    emit_tree(result, staging, opts.out, rules)
    # The runtime joins the output after the scan: no rule, however broad, may instrument it.
    for rel, data in runtime_files(binding).items():
        target = opts.out / rel
        if not (target.is_file() and target.read_bytes() == data):
            atomic_write(target, data)
    touched = {t.file.split("/", 1)[0] for t in result.plan.targets}
    rewritten = {w.path.name for w in wheels if _wheel_owns(w, touched)}
    return [result], rewritten


def _wheel_owns(wheel: Wheel, top_levels: set[str]) -> bool:
    with zipfile.ZipFile(wheel.path) as zf:
        return any(n.split("/", 1)[0] in top_levels for n in zf.namelist())


def _wheelhouse(
    opts: GovernOptions, wheels: list[Wheel], rules: RuleSet, binding: dict[str, object],
) -> tuple[list[BuildResult], set[str]]:
    opts.out.mkdir(parents=True, exist_ok=True)
    results: list[BuildResult] = []
    rewritten: set[str] = set()
    for wheel in wheels:
        path, result = rewrite_wheel(
            wheel.path, rules, opts.out, cache_dir=opts.cache_dir, jobs=opts.jobs,
            progress=opts.progress,
        )
        results.append(result)
        if result.outputs:
            # Rewritten code imports the runtime: the wheel must pull it in when installed.
            add_requirement(path, f"{RUNTIME_DISTRIBUTION}=={__version__}")
            rewritten.add(wheel.path.name)
        else:
            shutil.copyfile(wheel.path, path)  # untouched wheels stay byte-identical
    write_runtime_wheel(opts.out, runtime_files(binding), runtime_metadata())
    if service_kind(opts.service) != "project":
        # A plain folder is no wheel: its own files, rewritten by any user rule, go to OUT/app.
        with tempfile.TemporaryDirectory(prefix="instpy-app-") as tmp:
            _copy_service(opts.service.resolve(), Path(tmp))
            result = run(Path(tmp), rules, cache_dir=opts.cache_dir, jobs=opts.jobs)
            emit_tree(result, Path(tmp), opts.out / "app", rules)
        results.append(result)
    return results, rewritten

"""Phase 1: which functions of which files the rules select (the front of the build).

Per file: a module-name pre-filter (a rule only matches modules it names), a text pre-filter (an
exact rule's function name must occur in the file), the opt-out marker, then `ast` to list the
functions and match them. Version ranges are checked once per rule, against the distribution's
version found in the input itself (`*.dist-info/METADATA`, a project's `pyproject.toml`) or, failing
that, in the installed environment.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from instpy.build.errors import CollisionError
from instpy.build.functions import PREFIX, collect_functions, reserved_uses
from instpy.build.inject import is_rewritten
from instpy.build.plan import PlannedTarget
from instpy.build.rules import InjectionRule

SKIP_FILE = re.compile(rb"^[ \t]*#[ \t]*instpy:[ \t]*skip-file\b", re.MULTILINE)
SKIPPED_DIRS = frozenset({"__pycache__"})


@dataclass(frozen=True)
class SourceFile:
    rel: str  # '/'-separated path relative to the root
    module: str


@dataclass
class FileScan:
    """What scanning one file found (also what the cache keeps)."""

    targets: list[PlannedTarget] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parsed: bool = False


def walk_tree(root: Path) -> Iterator[str]:
    """Every file under `root` as a sorted '/'-separated relative path.

    Hidden directories (`.git`, `.venv`, ...) and `__pycache__` are not part of the input.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            yield rel.replace(os.sep, "/")


def module_name(rel: str, src_layout: bool = False) -> str | None:
    """The dotted module a `.py` path imports as, or None for other files."""
    if not rel.endswith(".py"):
        return None
    parts = rel[:-3].split("/")
    if len(parts) > 2 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib"):
        parts = parts[2:]  # a wheel's .data/purelib/ installs at the root
    elif src_layout and parts[0] == "src" and len(parts) > 1:
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parts else None


def is_src_layout(root: Path) -> bool:
    return (root / "src").is_dir() and any(
        (root / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")
    )


def tree_versions(root: Path, rels: Sequence[str]) -> dict[str, str]:
    """Distribution versions that the input itself declares, by canonical name."""
    found: dict[str, str] = {}
    for rel in rels:
        head, _, tail = rel.rpartition("/")
        if tail == "METADATA" and head.endswith(".dist-info") and "/" not in head:
            found.update(metadata_version((root / rel).read_bytes()))
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        found.update(_pyproject_version(pyproject))
    return found


def metadata_version(data: bytes) -> dict[str, str]:
    headers = HeaderParser().parsestr(data.decode("utf-8", "replace"))
    name, version = headers.get("Name"), headers.get("Version")
    return {canonicalize_name(name): version} if name and version else {}


def _pyproject_version(path: Path) -> dict[str, str]:
    try:
        tomllib = importlib.import_module("tomllib")
    except ImportError:  # Python 3.10: fall back to the installed metadata
        return {}
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (ValueError, UnicodeDecodeError):  # TOMLDecodeError is a ValueError
        return {}
    name, version = project.get("name"), project.get("version")
    if isinstance(name, str) and isinstance(version, str):
        return {canonicalize_name(name): version}
    return {}


def version_problem(rule: InjectionRule, versions: dict[str, str]) -> str | None:
    """Why the rule's version range excludes it, or None when it applies."""
    if rule.distribution is None or rule.versions is None:
        return None
    key = canonicalize_name(rule.distribution)
    version = versions.get(key)
    if version is None:
        try:
            version = importlib.metadata.version(rule.distribution)
        except importlib.metadata.PackageNotFoundError:
            return (
                f"distribution {rule.distribution!r} is neither in the input nor installed, "
                f"so its version cannot be checked against {rule.versions!r}"
            )
    try:
        parsed = Version(version)
    except InvalidVersion:
        return f"{rule.distribution} has the non-PEP 440 version {version!r}"
    if parsed not in SpecifierSet(rule.versions, prereleases=True):
        return f"{rule.distribution} {version} is outside {rule.versions!r}"
    return None


def scan_source(
    data: bytes, source: SourceFile, rules: Sequence[InjectionRule], root_label: str = ""
) -> FileScan:
    """Match `rules` (already filtered by module name and version) against one file."""
    result = FileScan()
    where = f"{root_label}{source.rel}"
    words = [w for r in rules for w in r.literal_words()]
    if len(words) == len(rules) and not any(w.encode() in data for w in words):
        return result  # every rule is exact and none of their names occurs in the file
    if SKIP_FILE.search(data):
        result.warnings.append(f"{where}: opted out with '# instpy: skip-file'; left unchanged")
        return result
    try:
        tree = ast.parse(data, filename=where)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        result.warnings.append(f"{where}:{line}: cannot parse ({exc}); left unchanged")
        return result
    result.parsed = True
    for fn in collect_functions(tree, may_yield=b"yield" in data):
        matched = [r for r in rules if r.matches_function(fn.class_path, fn.name)]
        if not matched:
            continue
        result.targets.append(
            PlannedTarget(
                fingerprint=f"{source.module}:{fn.qualname}",
                file=source.rel,
                line=fn.line,
                index=fn.index,
                kind=fn.kind,
                rules=tuple(r.name for r in matched),
                on_enter=tuple(r.on_enter for r in matched if r.on_enter),
                on_exit=tuple(r.on_exit for r in matched if r.on_exit),
                params=fn.params,
                keys=fn.keys,
            )
        )
    if result.targets and PREFIX.encode() in data and not is_rewritten(data):
        uses = reserved_uses(tree)
        if uses:
            name, line = uses[0]
            raise CollisionError(
                f"{where}:{line}: {name!r} uses the prefix {PREFIX!r} that instpy reserves for "
                "generated code, so injecting here could change its meaning; rename it, or opt "
                "the file out with a '# instpy: skip-file' comment"
            )
    return result

"""The scanned tree's Python modules: which files, their module names, imports and constants."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from instpy.build.endpoints.model import ScanWarning

_SKIP_DIRS = frozenset(
    {"__pycache__", "node_modules", "site-packages", "venv", "env", "build", "dist", "htmlcov"}
)
_WEB_FRAMEWORKS = frozenset({"flask", "fastapi", "starlette", "aiohttp", "django"})


@dataclass
class Module:
    name: str
    rel: str
    is_package: bool
    tree: ast.Module
    imports: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    consts: dict[str, str] = field(default_factory=dict)  # module-level string constants
    containers: dict[str, str] = field(default_factory=dict)  # local name -> container id
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)

    def imports_web(self) -> bool:
        """Whether it imports a web framework: only then is an unresolved route worth a warning."""
        return any(q.split(".")[0] in _WEB_FRAMEWORKS for q in self.imports.values())


def iter_files(root: Path, suffix: str) -> Iterator[Path]:
    """Files under `root` ending in `suffix`, sorted, outside hidden, virtualenv, build and
    cache folders."""
    for path in sorted(root.rglob(f"*{suffix}")):
        parts = path.relative_to(root).parts[:-1]
        if any(p.startswith(".") or p in _SKIP_DIRS or p.endswith(".egg-info") for p in parts):
            continue
        yield path


def load_module(root: Path, path: Path) -> Module | ScanWarning:
    """Parse one file and read its imports, classes and constants; a warning if it cannot."""
    rel = path.relative_to(root)
    try:
        tree = ast.parse(path.read_bytes(), filename=str(rel))
    except SyntaxError as exc:
        return ScanWarning(rel.as_posix(), exc.lineno or 1, f"cannot parse: {exc.msg}; skipped")
    except (OSError, ValueError) as exc:
        return ScanWarning(rel.as_posix(), 1, f"cannot read: {exc}; skipped")
    name, is_package = _module_name(rel)
    mod = Module(name, rel.as_posix(), is_package, tree)
    _collect_imports(mod)
    _collect_consts(mod)
    return mod


def _module_name(rel: Path) -> tuple[str, bool]:
    parts = list(rel.with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _collect_imports(mod: Module) -> None:
    # Imports anywhere in the module count (a factory imports inside its function), and
    # relative imports are made absolute so names from sibling modules resolve.
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    mod.imports[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    mod.imports[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = mod.name.split(".") if mod.name else []
                if not mod.is_package:
                    pkg = pkg[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                base = ".".join([*pkg, base] if base else pkg)
            for alias in node.names:
                local = alias.asname or alias.name
                mod.imports[local] = f"{base}.{alias.name}" if base else alias.name
        elif isinstance(node, ast.ClassDef):
            mod.classes[node.name] = node


def _collect_consts(mod: Module) -> None:
    for stmt in mod.tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            mod.consts[stmt.targets[0].id] = stmt.value.value

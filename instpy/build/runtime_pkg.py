"""The runtime a governed artifact carries: `instpy/__init__.py`, `instpy/runtime/**`, nothing else.

The build side (libcst, click, `instpy.build`, `instpy.cli`) stays behind. The build's binding
(license namespace and fingerprint, app name, tool version) travels inside the runtime as
`instpy/runtime/binding.json`, where `instpy.runtime.binding` reads it at run time.
"""

from __future__ import annotations

import json
from pathlib import Path

import instpy
from instpy import __version__

RUNTIME_DISTRIBUTION = "instpy-runtime"
# What the runtime imports besides the standard library (psutil only samples CPU).
RUNTIME_REQUIREMENTS = ("PyYAML>=6.0", "psutil>=5.9")
BINDING_FILE = "instpy/runtime/binding.json"
_SUFFIXES = (".py", ".json", ".typed")


def runtime_files(binding: dict[str, object]) -> dict[str, bytes]:
    """Relative path -> bytes of every file of the runtime package, binding included, sorted."""
    package = Path(instpy.__file__).parent
    files: dict[str, bytes] = {}
    for name in ("__init__.py", "py.typed"):
        files[f"instpy/{name}"] = (package / name).read_bytes()
    for path in sorted((package / "runtime").rglob("*")):
        if path.is_file() and path.suffix in _SUFFIXES and "__pycache__" not in path.parts:
            files["instpy/" + path.relative_to(package).as_posix()] = path.read_bytes()
    files[BINDING_FILE] = (json.dumps(binding, indent=2, sort_keys=True) + "\n").encode()
    return dict(sorted(files.items()))


def runtime_metadata() -> str:
    """The METADATA of the runtime's own wheel."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {RUNTIME_DISTRIBUTION}",
        f"Version: {__version__}",
        "Summary: instpy governance runtime carried by governed builds",
        "Requires-Python: >=3.10",
        *(f"Requires-Dist: {req}" for req in RUNTIME_REQUIREMENTS),
    ]
    return "\n".join(lines) + "\n"

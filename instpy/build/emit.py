"""Phase 3 for a tree: OUT holds the whole input tree, matched files rewritten, the rest copied.

Unmatched files are byte-identical copies (mode and mtime kept). A rebuild into the same OUT only
writes what changed and removes files that left the input, so a no-op rebuild touches nothing.
`.instpy-build.json` at the top of OUT records what was built (and marks OUT as ours).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from instpy import __version__
from instpy.build.errors import EmitError
from instpy.build.pipeline import BuildResult
from instpy.build.rules import RuleSet

MANIFEST = ".instpy-build.json"


def source_date_epoch() -> int | None:
    """`SOURCE_DATE_EPOCH` if set (reproducible builds), clamped to what zip files can hold."""
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if not raw:
        return None
    try:
        return max(int(raw), 315532800)  # 1980-01-01, the earliest zip timestamp
    except ValueError as exc:
        raise EmitError(
            f"SOURCE_DATE_EPOCH={raw!r} is not an integer; set it to seconds since 1970 "
            "(e.g. `git log -1 --format=%ct`) or unset it"
        ) from exc


def manifest(result: BuildResult, rules: RuleSet, fmt: str) -> dict[str, object]:
    return {
        "tool": f"instpy {__version__}",
        "format": fmt,
        "rules_digest": rules.digest,
        "rule_files": [Path(f).name for f in rules.files],
        "targets": [asdict(t) for t in result.plan.targets],
        "files": result.files,
    }


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".instpy-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _check_out(root: Path, out: Path) -> list[str]:
    """Refuse an output that would clobber the input or someone else's files; old file list."""
    root, out = root.resolve(), out.resolve()
    if out == root or root in out.parents:
        raise EmitError(
            f"output {out} is inside the input {root}; the next scan would read it back as input. "
            "Choose an output directory outside the input (e.g. ../out)"
        )
    if not out.exists():
        return []
    marker = out / MANIFEST
    if marker.is_file():
        try:
            files = json.loads(marker.read_text(encoding="utf-8")).get("files", [])
            return [str(f) for f in files]
        except (ValueError, OSError):
            return []
    if any(out.iterdir()):
        raise EmitError(
            f"output {out} is not empty and was not written by instpy build; "
            "pass an empty or new directory to -o, or remove it first"
        )
    return []


def emit_tree(result: BuildResult, root: Path, out: Path, rules: RuleSet) -> int:
    """Write the tree; return how many files were (re)written."""
    old_files = _check_out(root, out)
    epoch = source_date_epoch()
    written = 0
    made: set[Path] = set()
    for rel in result.files:
        src, dest = root / rel, out / rel
        rewritten = result.outputs.get(rel)
        if rewritten is not None:
            if not (dest.is_file() and dest.read_bytes() == rewritten):
                atomic_write(dest, rewritten, src.stat().st_mode & 0o7777)
                written += 1
            if epoch is not None:
                os.utime(dest, (epoch, epoch))
            continue
        st = src.stat()
        try:
            dt = dest.stat()
            if dt.st_size == st.st_size and dt.st_mtime_ns == st.st_mtime_ns:
                continue  # copied by an earlier build and unchanged since
        except FileNotFoundError:
            pass
        if dest.parent not in made:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made.add(dest.parent)
        shutil.copy2(src, dest)
        written += 1
    for rel in sorted(set(old_files) - set(result.files)):
        (out / rel).unlink(missing_ok=True)
    data = json.dumps(manifest(result, rules, "tree"), indent=2) + "\n"
    marker = out / MANIFEST
    if not (marker.is_file() and marker.read_text(encoding="utf-8") == data):
        atomic_write(marker, data.encode())
    return written

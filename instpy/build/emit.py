"""Phase 3 for a tree: OUT holds the whole input tree, matched files rewritten, the rest copied.

Unmatched files are byte-identical copies (mode and mtime kept). A rebuild into the same OUT only
writes what changed and removes files that left the input, so a no-op rebuild touches nothing.
`.instpy-build.json` at the top of OUT records what was built (and marks OUT as ours).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import asdict
from pathlib import Path

from instpy import __version__
from instpy.build.errors import EmitError
from instpy.build.files import atomic_write
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


def copy_file(src: str, dest: str, st: os.stat_result) -> None:
    """Copy `src` (whose stat is `st`) to `dest` with its mode and mtime, and nothing else.

    `shutil.copy2` costs about eight more syscalls per file (same-file and special-file stats,
    path-based utime and chmod, xattr listing): a third of emitting a large tree. The data goes
    through `copy_file_range` (in-kernel, reflinked where the filesystem can) and the metadata
    through the open descriptor. No hard links: users may edit OUT in place.
    """
    fd_in = os.open(src, os.O_RDONLY)
    try:
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            left = st.st_size
            while left > 0:
                n = _copy_range(fd_in, fd_out, left)
                if n == 0:  # the source shrank while copying; the next build copies it again
                    break
                left -= n
            os.fchmod(fd_out, st.st_mode & 0o7777)
            # The mtime is what tells the next build this copy is current (see emit_tree).
            os.utime(fd_out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_range(fd_in: int, fd_out: int, count: int) -> int:
    try:
        return os.copy_file_range(fd_in, fd_out, count)
    except (AttributeError, OSError):  # not Linux, or a filesystem pair that cannot do it
        data = os.read(fd_in, min(count, 1 << 20))
        return os.write(fd_out, data) if data else 0


def emit_tree(result: BuildResult, root: Path, out: Path, rules: RuleSet) -> int:
    """Write the tree; return how many files were (re)written."""
    old_files = _check_out(root, out)
    # Only files an earlier build wrote can already be current; the rest need no stat of OUT.
    previous = set(old_files)
    epoch = source_date_epoch()
    written = 0
    src_root, out_root = str(root), str(out)
    for folder in sorted({rel.rpartition("/")[0] for rel in result.files}):
        # Sorted, so parents come first: one mkdir per directory.
        os.makedirs(f"{out_root}/{folder}" if folder else out_root, exist_ok=True)
    for rel in result.files:
        src, dest = f"{src_root}/{rel}", f"{out_root}/{rel}"
        rewritten = result.outputs.get(rel)
        if rewritten is not None:
            current = rel in previous and os.path.isfile(dest)
            if not (current and Path(dest).read_bytes() == rewritten):
                atomic_write(Path(dest), rewritten, os.stat(src).st_mode & 0o7777)
                written += 1
            if epoch is not None:
                os.utime(dest, (epoch, epoch))
            continue
        st = os.stat(src)
        if rel in previous:
            try:
                dt = os.stat(dest)
                if dt.st_size == st.st_size and dt.st_mtime_ns == st.st_mtime_ns:
                    continue  # copied by an earlier build and unchanged since
            except FileNotFoundError:
                pass
        if stat.S_ISREG(st.st_mode):
            copy_file(src, dest, st)
        else:  # a FIFO or device: let shutil refuse it with its usual message
            shutil.copy2(src, dest)
        written += 1
    for rel in sorted(previous - set(result.files)):
        (out / rel).unlink(missing_ok=True)
    data = json.dumps(manifest(result, rules, "tree"), indent=2) + "\n"
    marker = out / MANIFEST
    if not (marker.is_file() and marker.read_text(encoding="utf-8") == data):
        atomic_write(marker, data.encode())
    return written

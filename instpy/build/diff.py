"""`instpy diff`: a unified diff of what inject would change."""

from __future__ import annotations

import difflib
import io
import tokenize
from pathlib import Path

from instpy.build.pipeline import BuildResult


def _text(data: bytes) -> list[str]:
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding, "replace").splitlines(keepends=True)


def unified_diff(result: BuildResult, root: Path) -> str:
    chunks: list[str] = []
    for rel in sorted(result.outputs):
        before = _text((root / rel).read_bytes())
        after = _text(result.outputs[rel])
        chunks.extend(difflib.unified_diff(before, after, f"a/{rel}", f"b/{rel}"))
    return "".join(chunks)

"""The build cache: one entry per (file content, rule set, tool version, code generator).

An entry holds a file's scan result and its rewritten bytes. Writes are atomic (temp file +
`os.replace`), so a crash never leaves half an entry; a bad entry (unreadable, corrupt, or from
another format) is logged with its reason and rebuilt, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from instpy import __version__
from instpy.build.files import atomic_write
from instpy.build.plan import PlannedTarget
from instpy.build.scan import FileScan

log = logging.getLogger("instpy.build.cache")
_FORMAT = 1
# The modules whose code decides the rewritten bytes: an edit to any of them (a new trampoline
# shape, say) must not reuse entries written by the old one, even at the same version number.
_GENERATOR = ("scan.py", "functions.py", "plan.py", "inject.py", "trampoline.py")


def _generator_digest() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in _GENERATOR:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    env = os.environ.get("INSTPY_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "instpy"


class BuildCache:
    """Entries under `root/<2 hex>/<key>`; `key(data)` mixes in the rule set and tool version."""

    def __init__(self, root: Path, rules_digest: str) -> None:
        self.root = root
        generator = _generator_digest()
        self.salt = f"{_FORMAT}\0{__version__}\0{generator}\0{rules_digest}\0".encode()

    def key(self, data: bytes, rel: str) -> str:
        # The path is part of the key: it decides the module name, hence the fingerprints.
        return hashlib.sha256(self.salt + rel.encode() + b"\0" + data).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> tuple[FileScan, bytes | None] | None:
        path = self._path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("instpy cache entry %s unreadable (%s); rebuilding it", path, exc)
            return None
        try:
            head, _, body = raw.partition(b"\n")
            meta = json.loads(head)
            if meta["format"] != _FORMAT or meta["key"] != key:
                raise ValueError("entry from another format or key")
            output = body if meta["has_output"] else None
            if output is not None and hashlib.sha256(output).hexdigest() != meta["output_sha256"]:
                raise ValueError("output hash mismatch (truncated or corrupted)")
            scan = FileScan(
                targets=[PlannedTarget.from_json(t) for t in meta["targets"]],
                warnings=[str(w) for w in meta["warnings"]],
                parsed=bool(meta["parsed"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("instpy cache entry %s is bad (%s); rebuilding it", path, exc)
            return None
        return scan, output

    def put(self, key: str, scan: FileScan, output: bytes | None) -> None:
        meta = {
            "format": _FORMAT,
            "key": key,
            "targets": [asdict(t) for t in scan.targets],
            "warnings": scan.warnings,
            "parsed": scan.parsed,
            "has_output": output is not None,
            "output_sha256": hashlib.sha256(output).hexdigest() if output is not None else None,
        }
        payload = json.dumps(meta, sort_keys=True).encode() + b"\n" + (output or b"")
        path = self._path(key)
        try:
            atomic_write(path, payload, 0o600)
        except OSError as exc:
            # A read-only or full cache only costs speed.
            log.warning("instpy cache entry %s not written (%s)", path, exc)

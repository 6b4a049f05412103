"""Tree emit: copies keep bytes, mode and mtime; a rebuild writes only what changed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from buildtest_helpers import FIXTURES

from instpy.build.emit import emit_tree
from instpy.build.pipeline import run
from instpy.build.rules import load_rules

RULES = FIXTURES / "shop-rules.yaml"


def test_copies_keep_mode_and_mtime_and_rebuild_is_incremental(tmp_path: Path) -> None:
    shop, out = tmp_path / "shopapp", tmp_path / "out"
    shutil.copytree(FIXTURES / "shopapp", shop)
    script = shop / "run.sh"
    script.write_bytes(b"#!/bin/sh\necho hi\n" * 5000)  # more than one copy chunk is fine too
    script.chmod(0o750)
    os.utime(script, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    rules = load_rules([RULES])
    result = run(shop, rules)
    first = emit_tree(result, shop, out, rules)
    assert first == len(result.files)
    copied = (out / "run.sh").stat()
    assert (out / "run.sh").read_bytes() == script.read_bytes()
    assert copied.st_mode & 0o7777 == 0o750
    assert copied.st_mtime_ns == 1_600_000_000_123_456_789
    assert emit_tree(result, shop, out, rules) == 0  # nothing changed
    script.write_bytes(b"changed\n")
    assert emit_tree(run(shop, rules), shop, out, rules) == 1
    assert (out / "run.sh").read_bytes() == b"changed\n"

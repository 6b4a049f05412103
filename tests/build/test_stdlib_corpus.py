"""The standard library as a corpus: every function instrumented, every file still compiles.

The test runs a deterministic sample (every 8th file, sorted) to stay within the CI budget;
`bench/build_speed.py --corpus` runs the whole standard library and prints the full counts.
"""

from __future__ import annotations

import shutil
import sysconfig
import warnings
from pathlib import Path

from buildtest_helpers import HOOKS, rules_file

from instpy.build.pipeline import run

STDLIB = Path(sysconfig.get_paths()["stdlib"])
STEP = 8


def test_stdlib_sample_compiles_after_instrument_all(tmp_path: Path) -> None:
    every = sorted(
        p for p in STDLIB.rglob("*.py")
        if "site-packages" not in p.parts and "__pycache__" not in p.parts
    )
    sample = every[::STEP]
    root = tmp_path / "stdlib"
    for path in sample:
        dest = root / path.relative_to(STDLIB)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    rules = rules_file(
        tmp_path,
        f"- name: all\n  match: regex\n  module: '.*'\n  class: '.*'\n  function: '.*'\n"
        f"  on_enter: {HOOKS}:noop\n  on_exit: {HOOKS}:noop\n",
    )
    result = run(root, rules, jobs=2)
    unparseable = [w for w in result.plan.warnings if "cannot parse" in w]
    failures: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes and the like in the originals
        for rel, data in result.outputs.items():
            try:
                compile((root / rel).read_bytes(), rel, "exec", dont_inherit=True)
            except SyntaxError:
                unparseable.append(rel)  # a deliberately broken test input (badsyntax_*.py)
                continue
            try:
                compile(data, rel, "exec", dont_inherit=True)
            except SyntaxError as exc:
                failures.append(f"{rel}:{exc.lineno}: {exc.msg}")
    print(
        f"stdlib sample: {len(sample)} of {len(every)} files, {len(result.outputs)} rewritten, "
        f"{len(result.plan.targets)} functions instrumented, {len(unparseable)} originals "
        "that do not compile themselves"
    )
    assert failures == []
    assert len(result.plan.targets) > 3000
    assert len(unparseable) <= len(sample) // 50  # only the deliberately broken test inputs

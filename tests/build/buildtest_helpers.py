"""Shared by the build tests: instrument source, import the result, record hook calls."""

from __future__ import annotations

import importlib
import itertools
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instpy.build.pipeline import run
from instpy.build.rules import RuleSet, load_rules
from instpy.runtime.call import Call

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "build"
HOOKS = "instpy_test_hooks"
_names = itertools.count()


@dataclass
class Recorder:
    """What the test hooks saw; `on_enter`/`on_exit` let a test act on the call."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    on_enter: Callable[[Call], Any] | None = None
    on_exit: Callable[[Call], Any] | None = None

    def enter(self, call: Call) -> Any:
        self.events.append(("enter", call.function, dict(call.params)))
        return self.on_enter(call) if self.on_enter else None

    def exit(self, call: Call) -> Any:
        self.events.append(("exit", call.function, call.return_value, call.exception))
        return self.on_exit(call) if self.on_exit else None


def rules_file(tmp_path: Path, text: str) -> RuleSet:
    path = tmp_path / f"rules{next(_names)}.yaml"
    path.write_text(text, encoding="utf-8")
    return load_rules([path])


def match_all(tmp_path: Path, module: str = ".*", exit_hook: bool = True) -> RuleSet:
    exit_line = f"  on_exit: {HOOKS}:exit\n" if exit_hook else ""
    return rules_file(
        tmp_path,
        f"- name: all\n  match: regex\n  module: '{module}'\n  class: '.*'\n  function: '.*'\n"
        f"  on_enter: {HOOKS}:enter\n{exit_line}",
    )


def rewrite(tmp_path: Path, source: str | bytes, rules: RuleSet, name: str = "mod") -> bytes:
    """Rewrite one module's source with `rules` through the real pipeline."""
    src = tmp_path / f"in{next(_names)}"
    src.mkdir()
    data = source.encode() if isinstance(source, str) else source
    (src / f"{name}.py").write_bytes(data)
    result = run(src, rules)
    return result.outputs.get(f"{name}.py", data)


def import_source(tmp_path: Path, data: bytes, name: str | None = None) -> types.ModuleType:
    """Import `data` as a fresh, uniquely named module."""
    name = name or f"instpy_t_mod{next(_names)}"
    where = tmp_path / f"mods{next(_names)}"
    where.mkdir()
    (where / f"{name}.py").write_bytes(data)
    sys.path.insert(0, str(where))
    try:
        importlib.invalidate_caches()
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(where))

"""Cost of an injected trampoline per call, beside the same function without one.

Inactive targets must cost one flag check (issue 2: at most 100 ns over a bare call). Measured
interleaved in one process with bench/timing.py; prints ns per call and the excess over bare.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import best_ns_per_call, print_table

from instpy.build.pipeline import run
from instpy.build.rules import load_rules
from instpy.runtime import injected

SOURCE = """\
def bare(a, b=1):
    return a + b

def enter_only(a, b=1):
    return a + b

def with_exit(a, b=1):
    return a + b
"""

RULES = """\
- name: enter
  module: benchmod
  function: enter_only
  on_enter: instpy_bench_hooks:noop
- name: exit
  module: benchmod
  function: with_exit
  on_enter: instpy_bench_hooks:noop
  on_exit: instpy_bench_hooks:noop
"""


def _load() -> types.ModuleType:
    hooks = types.ModuleType("instpy_bench_hooks")
    hooks.noop = lambda call: None  # type: ignore[attr-defined]
    sys.modules["instpy_bench_hooks"] = hooks
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "benchmod.py").write_text(SOURCE)
        (root / "rules.yaml").write_text(RULES)
        result = run(root, load_rules([root / "rules.yaml"]))
        (root / "benchmod.py").write_bytes(result.outputs["benchmod.py"])
        spec = importlib.util.spec_from_file_location("benchmod", root / "benchmod.py")
        if spec is None or spec.loader is None:
            raise RuntimeError("cannot load the rewritten module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


class _NoopGovernor:
    """A governor that admits every call with a constant token."""

    def enter(self, values: tuple[object, ...]) -> object:
        return 1

    async def aenter(self, values: tuple[object, ...]) -> object:
        return 1

    def leave(self, token: object, value: object) -> object:
        return value

    def fail(self, token: object, exc: BaseException) -> bool:
        return True

    async def aleave(self, token: object, value: object) -> object:
        return value

    async def afail(self, token: object, exc: BaseException) -> bool:
        return True


def main() -> None:
    mod = _load()
    bare, enter_only, with_exit = mod.bare, mod.enter_only, mod.with_exit
    for target in injected.all_targets():
        target.active = False
    inactive = best_ns_per_call(
        [
            ("bare call", lambda: bare(1)),
            ("inactive, enter hook", lambda: enter_only(1)),
            ("inactive, enter+exit hooks", lambda: with_exit(1)),
        ],
        calls=50_000,
        rounds=15,
    )
    print(f"Python {sys.version.split()[0]}: inactive targets (ns per call incl. the lambda)")
    print_table(inactive, "bare call")
    for target in injected.all_targets():
        target.active = True
    active = best_ns_per_call(
        [
            ("bare call", lambda: bare(1)),
            ("active, no-op enter hook", lambda: enter_only(1)),
            ("active, no-op enter+exit", lambda: with_exit(1)),
        ],
        calls=20_000,
        rounds=10,
    )
    print("\nactive targets with no-op hooks (for scale; not subject to the 100 ns target)")
    print_table(active, "bare call")
    # A governor takes a target's calls without a Call or hook dispatch (the method hooks'
    # path): what is left is the trampoline and the governor's enter and leave frames.
    (target,) = injected.targets("benchmod:with_exit")
    target.govern(_NoopGovernor())
    governed = best_ns_per_call(
        [("bare call", lambda: bare(1)), ("active, no-op governor", lambda: with_exit(1))],
        calls=20_000,
        rounds=10,
    )
    print("\nthe same target governed by a no-op governor (the method hooks' path, no engine)")
    print_table(governed, "bare call")
    worst = max(v - inactive["bare call"] for v in inactive.values())
    print(f"\ninactive overhead: worst {worst:.1f} ns over a bare call (target <= 100 ns)")


if __name__ == "__main__":
    main()

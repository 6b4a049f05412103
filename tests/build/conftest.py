"""Fixtures for the build tests (helpers live in buildtest_helpers.py)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from buildtest_helpers import HOOKS, Recorder

from instpy.runtime.call import Call

_current: list[Recorder] = []


def _enter(call: Call) -> Any:
    return _current[-1].enter(call) if _current else None


def _exit(call: Call) -> Any:
    return _current[-1].exit(call) if _current else None


def _noop(call: Call) -> None:
    return None


# One stable module: the runtime resolves a hook once per process, so the module's functions
# delegate to whichever test's recorder is current.
_module = types.ModuleType(HOOKS)
_module.enter = _enter  # type: ignore[attr-defined]
_module.exit = _exit  # type: ignore[attr-defined]
_module.noop = _noop  # type: ignore[attr-defined]
sys.modules[HOOKS] = _module


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    _current.append(rec)
    yield rec
    _current.remove(rec)

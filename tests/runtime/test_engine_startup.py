"""Starting the engine: rules apply from the first call; async code builds it off the loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from instpy.runtime import governance
from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked


def test_the_first_version_is_applied_before_watch_returns(tmp_path: Path) -> None:
    path = tmp_path / "governance.yaml"
    path.write_text('rules:\n  - resource: "GET /x"\n    flow: {qps: 0}\n')
    eng = Engine()
    try:
        eng.watch(str(path))
        assert isinstance(eng.entry("GET /x"), Blocked)  # the very first call is governed
    finally:
        eng.close()


def test_engine_async_builds_the_engine_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built_on: list[int] = []
    sentinel = Engine()

    def build() -> Engine:
        built_on.append(threading.get_ident())
        return sentinel

    monkeypatch.setattr(governance, "_engine", [])
    monkeypatch.setattr(governance, "engine", build)

    async def first_request() -> tuple[Engine, int]:
        return await governance.engine_async(), threading.get_ident()

    try:
        got, loop_thread = asyncio.run(first_request())
        assert got is sentinel
        assert built_on and built_on[0] != loop_thread
    finally:
        sentinel.close()


def test_engine_async_returns_the_existing_engine_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    existing = Engine()
    monkeypatch.setattr(governance, "_engine", [existing])
    try:
        assert asyncio.run(governance.engine_async()) is existing
    finally:
        existing.close()

"""Creating the engine on an event loop's thread never reads governance.yaml on that thread."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from instpy.runtime import governance
from instpy.runtime.engine import Engine
from instpy.runtime.reload import FileWatcher


def test_in_event_loop_is_true_only_inside_a_running_loop() -> None:
    assert governance._in_event_loop() is False

    async def probe() -> bool:
        return governance._in_event_loop()

    assert asyncio.run(probe()) is True


def test_first_load_in_background_reads_the_file_off_the_calling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "governance.yaml"
    path.write_text('rules:\n  - resource: "GET /x"\n    flow: {qps: 0}\n')
    readers: list[int] = []
    original = FileWatcher.poll

    def poll(self: FileWatcher) -> None:
        readers.append(threading.get_ident())
        original(self)

    monkeypatch.setattr(FileWatcher, "poll", poll)
    eng = Engine()
    try:

        async def start() -> None:
            eng.watch(str(path), first_in_background=True)

        asyncio.run(start())
        deadline = time.monotonic() + 2
        while eng.rules_for("GET /x") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert eng.rules_for("GET /x") is not None
        assert readers and threading.get_ident() not in readers
    finally:
        eng.close()


def test_first_load_in_the_caller_by_default(tmp_path: Path) -> None:
    path = tmp_path / "governance.yaml"
    path.write_text('rules:\n  - resource: "GET /x"\n    flow: {qps: 0}\n')
    eng = Engine()
    try:
        eng.watch(str(path))
        assert eng.rules_for("GET /x") is not None  # applied before watch() returned
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

"""The shared segment's lifecycle with real processes: nothing is left in /dev/shm by an
instance whose workers exit together, crash, or whose segment folder is deleted; a dead
worker's in-flight slots come back without traffic on the resource, for the next call and
for a reader (metrics) alike."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from instpy.runtime.engine import Engine
from instpy.runtime.entry import Entry
from instpy.runtime.governance import parse_config
from instpy.runtime.shared import segment as segment_mod
from instpy.runtime.stat.shared import SharedStore

FORK = multiprocessing.get_context("fork")
RULES = """
metrics: {all_resources: true}
rules:
  - resource: pool
    concurrency: {max: 3}
"""

pytestmark = pytest.mark.skipif(not os.path.isdir(segment_mod.SEM_DIR),
                                reason="named semaphores are files in /dev/shm on Linux only")


def sem_file(name: str) -> Path:
    return Path(segment_mod.SEM_DIR) / ("sem." + name.lstrip("/"))


@pytest.fixture
def shm(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    seg = segment_mod.segment_for("test", str(tmp_path))
    seg.leave()


def _open(directory: str, ready: multiprocessing.Queue[str], leave: object) -> None:
    seg = segment_mod.segment_for("test", directory)
    ready.put(seg.sem_name)
    if leave is not None:
        leave.wait(10)  # type: ignore[attr-defined]  # all exit together
        seg.leave()  # what the atexit hook runs
        os._exit(0)
    time.sleep(60)


def start_workers(directory: Path, n: int = 4,
                  leave: object = None
                  ) -> tuple[list[multiprocessing.process.BaseProcess], str]:
    ready: multiprocessing.Queue[str] = FORK.Queue()
    procs: list[multiprocessing.process.BaseProcess] = [
        FORK.Process(target=_open, args=(str(directory), ready, leave)) for _ in range(n)]
    for p in procs:
        p.start()
    names = {ready.get(timeout=10) for _ in procs}
    assert len(names) == 1  # one semaphore for the instance
    return procs, names.pop()


def test_workers_that_exit_together_leave_neither_file_nor_semaphore(tmp_path: Path) -> None:
    leave = FORK.Event()
    procs, name = start_workers(tmp_path, leave=leave)
    assert sem_file(name).exists() and list(tmp_path.glob("instpy-*.seg"))
    leave.set()
    for p in procs:
        p.join(10)
    assert not sem_file(name).exists()
    assert not list(tmp_path.glob("instpy-*.seg"))


def test_a_crashed_instance_is_removed_by_the_next_start(tmp_path: Path) -> None:
    procs, name = start_workers(tmp_path)
    for p in procs:
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    assert sem_file(name).exists()  # nobody ran an exit hook
    # The next process to open a segment there sweeps stale ones (past their creation grace).
    segment_mod.remove_stale(str(tmp_path), keep="", min_age_s=0.0)
    assert not sem_file(name).exists()
    assert not list(tmp_path.glob("instpy-*.seg"))


def test_a_semaphore_whose_folder_is_gone_is_removed_by_any_start(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    folder.mkdir()
    procs, name = start_workers(folder)
    for p in procs:
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
    shutil.rmtree(folder)
    other = tmp_path / "other"
    other.mkdir()
    seg = segment_mod.segment_for("other", str(other))  # another instance starting
    try:
        assert not sem_file(name).exists()
        assert sem_file(seg.sem_name).exists()  # its own is kept
        assert segment_mod.remove_orphan_semaphores() == []  # and is no orphan
    finally:
        seg.leave()
    assert not sem_file(seg.sem_name).exists()


def _hold(directory: str, n: int, ready: multiprocessing.Queue[int]) -> None:
    store = SharedStore(segment_mod.segment_for("test", directory))
    eng = Engine(parse_config(RULES, "governance.yaml"), store=store)
    held = [eng.entry("pool", "internal") for _ in range(n)]
    assert all(isinstance(h, Entry) for h in held)
    ready.put(os.getpid())
    time.sleep(60)


def kill_holder(directory: Path) -> Engine:
    """An engine of the instance, after a worker holding all three `pool` slots was killed;
    no call has been made since."""
    eng = Engine(parse_config(RULES, "governance.yaml"),
                 store=SharedStore(segment_mod.segment_for("test", str(directory))))
    ready: multiprocessing.Queue[int] = FORK.Queue()
    proc = FORK.Process(target=_hold, args=(str(directory), 3, ready))
    proc.start()
    os.kill(ready.get(timeout=10), signal.SIGKILL)
    proc.join(10)
    return eng


def in_flight(text: str, resource: str) -> int:
    prefix = f'instpy_requests_in_flight{{resource="{resource}"}} '
    return int(next(line for line in text.splitlines() if line.startswith(prefix))[len(prefix):])


def test_a_dead_workers_slots_serve_the_first_call_after_a_quiet_spell(shm: Path) -> None:
    eng = kill_holder(shm)
    time.sleep(1.2)  # no call anywhere: no bucket rolls, no sweep on the way
    res = eng.entry("pool", "internal")
    assert isinstance(res, Entry)  # the very first call, no retry
    more = [eng.entry("pool", "internal") for _ in range(2)]
    assert all(isinstance(m, Entry) for m in more)
    assert not isinstance(eng.entry("pool", "internal"), Entry)  # and the limit holds
    for h in [res, *more]:
        assert isinstance(h, Entry)
        h.exit()


def test_a_reader_alone_does_not_see_a_dead_workers_slots(shm: Path) -> None:
    eng = kill_holder(shm)
    time.sleep(0.3)  # past the sweep interval, with no call at all
    assert in_flight(eng.metrics_text(), "pool") == 0

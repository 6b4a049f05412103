"""Test helpers for the governance runtime: a manual clock and engines from YAML text.

Fixtures live here rather than in a conftest.py: the tests tree has no packages, and a
second `conftest` module name would clash for mypy with tests/build/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from instpy.runtime.engine import Engine
from instpy.runtime.governance import parse_config


class FakeClock:
    """A monotonic clock the test moves by hand (nanoseconds)."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now = int(start_s * 1e9)
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += int(ms * 1_000_000)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += int(seconds * 1e9)


MakeEngine = Callable[..., Engine]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_engine(clock: FakeClock) -> Iterator[MakeEngine]:
    engines: list[Engine] = []

    def make(text: str = "", cpu: float | None = None) -> Engine:
        eng = Engine(parse_config(text, "test.yaml"), clock=clock, sleep=clock.sleep,
                     cpu=(lambda: cpu) if cpu is not None else None)
        engines.append(eng)
        return eng

    yield make
    for eng in engines:
        eng.close()

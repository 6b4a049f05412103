"""Rule state a check keeps between calls, in this process or in the instance's segment.

Checks with state (warm-up's token store, throttling's pacing, the breaker's state and window)
keep it in a `State`: numbered fields read and written through `ints` and `floats`, and a
`guard()` held around every read-modify-write. `LocalState` holds the fields in lists and its
guard does nothing (the plan already holds the resource lock around these checks); a
`SharedState` holds them in a record of the instance's segment, so every worker of a pre-fork
server reads and writes the same fields, and its guard is the segment lock.

`StateTable` (from `StatsStore.states`) gives each rule its state: shared for rules of scope
`instance` when the store has a segment, local otherwise. A field is an int or a float, never
both: `ints` and `floats` are two views of the same words.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

from instpy.runtime.shared.segment import RECORD_WORDS, Segment

STATE_KIND = 2  # in a record's word 3, as shared/inbound.py and stat/shared.py mark theirs
FIELDS_AT = 4  # fields start after the key and the kind
MAX_FIELDS = RECORD_WORDS - FIELDS_AT

Init = Callable[["State"], None]
T = TypeVar("T")


class Fields(Protocol[T]):
    def __getitem__(self, index: int, /) -> T: ...
    def __setitem__(self, index: int, value: T, /) -> None: ...


class State(Protocol):
    @property
    def ints(self) -> Fields[int]: ...
    @property
    def floats(self) -> Fields[float]: ...
    @property
    def shared(self) -> bool: ...

    def guard(self) -> contextlib.AbstractContextManager[object]: ...


class LocalState:
    """Fields in this process."""

    shared = False

    def __init__(self, fields: int, init: Init | None = None) -> None:
        self.ints: Fields[int] = [0] * fields
        self.floats: Fields[float] = [0.0] * fields
        if init is not None:
            init(self)

    def guard(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()


class SharedState:
    """Fields in a record of the instance's segment, guarded by the segment lock."""

    shared = True

    def __init__(self, seg: Segment, at: int, fields: int) -> None:
        self.segment = seg
        self.at = at  # the record's word offset in the segment
        first = at + FIELDS_AT
        self.ints: Fields[int] = seg.words[first:first + fields]
        self.floats: Fields[float] = seg.words[first:first + fields].cast("B").cast("d")

    @contextlib.contextmanager
    def guard(self) -> Iterator[object]:
        seg = self.segment
        seg.lock()
        try:
            yield None
        finally:
            seg.release()


class StateTable:
    """The states of one rule snapshot: `state(family, rule, fields, init)`."""

    def __init__(self, seg: Segment | None, process_scoped: Iterable[str] = ()) -> None:
        self.segment = seg
        self.process_scoped = frozenset(process_scoped)

    def state(self, family: str, rule: object, resource: str, fields: int,
              init: Init | None = None, kind: int = STATE_KIND) -> State:
        """The state of `rule` (a frozen rule: its text names the record, so a changed rule
        starts afresh, as a new check does in one process). `kind` marks records whose words
        a sweep must visit when a worker dies (see segment.py `_reclaim`)."""
        seg = self.segment
        if seg is None or resource in self.process_scoped or fields > MAX_FIELDS:
            return LocalState(fields, init)
        key = hashlib.blake2b(f"\0{family}\0{rule!r}".encode("utf-8", "surrogatepass"),
                              digest_size=16).digest()

        def first_use(w: memoryview, at: int) -> None:
            w[at + 3] = kind
            if init is not None:
                init(SharedState(seg, at, fields))

        at = seg.record(key, first_use)
        if at is None:  # the segment is full: this process keeps its own
            return LocalState(fields, init)
        return SharedState(seg, at, fields)


def local_table() -> StateTable:
    return StateTable(None)

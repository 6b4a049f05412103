"""One instance's shared-memory segment: a file mapped by every worker process, one lock.

Layout (signed 64-bit words, native order; `H_*` index the header):

    header      words 0..63      magic, layout, lock owner, next sweep time, records in use
    workers     words 64..127    pid of the process in each worker slot (0: free)
    history     words 128..159   the inbound BBR history (stat/shared.py)
    records     words 512..      one record of RECORD_WORDS per resource: RECORD_HEAD words
                                 of instance-wide counters, then one stripe of STRIPE_WORDS per
                                 worker slot that only that worker writes (stat/shared.py,
                                 shared/inbound.py); the file is sparse, so untouched stripes
                                 cost no memory

Locking: one POSIX named semaphore per segment (`multiprocessing`'s SemLock, the primitive
behind `multiprocessing.Lock`), found by name, so workers that never shared a parent's memory
still meet on it. Every read-modify-write of the records happens with it held; readers that only
report (metrics) read without it (aligned 8-byte stores are not torn).

Liveness: a process registers in a worker slot and holds a POSIX record lock (`lockf`) on byte
`LIVE_BASE + slot` of the segment file for as long as it lives. The kernel drops that lock when
the process dies, however it dies (SIGKILL, OOM, and already while it is a zombie), and a fork
does not inherit it. A process that finds the byte lockable knows the slot's owner is gone:
`sweep` then takes back what the dead worker held (its in-flight counts per record) and frees the
slot; a restarted worker registers in a free slot and joins the shared state.

A worker killed while it holds the semaphore would leave it taken: the lock's owner (worker slot)
is written after every acquire, and a process that waits for more than `STALL_S` checks whether
that owner is alive and, if it is not, releases the semaphore for it.

Semaphore lifetime: the name carries the segment file's inode and path, so a new file never
meets a semaphore left (perhaps taken) by a dead instance, and `remove_stale` can tell an
orphan (its file is gone or is another file now) from a semaphore in use without asking
anyone. The last worker out unlinks both; what a crash or a simultaneous exit leaves behind is
removed by the next process that opens a segment.

Fork: `os.register_at_fork` gives a forked child (`gunicorn --preload` forks after the engine
may exist) its own semaphore handle and its own worker slot; nothing runs in the background.
"""

from __future__ import annotations

import _multiprocessing  # type: ignore[import-not-found]  # no stubs; SemLock is stable
import atexit
import contextlib
import errno
import fcntl
import hashlib
import logging
import mmap
import os
import tempfile
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable

MAGIC = 0x1E57_9A11_0000_0001
WORDS = 8
MAX_WORKERS = 64
MAX_RECORDS = 1024
RECORD_HEAD = 32
STRIPE_WORDS = 32  # a multiple of 8 words: workers' stripes never share a cache line
RECORD_WORDS = RECORD_HEAD + MAX_WORKERS * STRIPE_WORDS
RECORDS_AT = 512
SIZE_WORDS = RECORDS_AT + MAX_RECORDS * RECORD_WORDS
SIZE = SIZE_WORDS * WORDS
LIVE_BASE = SIZE + 4096  # liveness bytes past the data (advisory locks need no data there)
STALL_S = 0.1
SWEEP_NS = 200_000_000

H_MAGIC, H_LAYOUT, H_OWNER, H_SWEEP, H_RECORDS, H_HIGH = 0, 1, 2, 3, 4, 5
WORKERS_AT = 64
HISTORY_AT = 128
_SEMAPHORE = 1  # SemLock kind of multiprocessing.Lock
SEM_DIR = "/dev/shm"  # where glibc keeps named semaphores (as files named sem.NAME)
_SEM_PREFIX = "instpy-"


def shared_dir() -> str:
    """Where segments live: INSTPY_SHM_DIR, else /dev/shm (memory), else the temp dir."""
    named = os.environ.get("INSTPY_SHM_DIR", "").strip()
    if named:
        return named
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


class Segment:
    """The mapped segment of one instance, as seen by this process.

    State: the file descriptor and mapping (inherited across fork), the semaphore handle and
    the worker slot (both per process: renewed in a forked child), the record index by
    resource key, and `rebind` callbacks of the objects that cached per-process values.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.sem_name = sem_name(path, os.fstat(self.fd).st_ino)
        if os.fstat(self.fd).st_size < SIZE:
            os.ftruncate(self.fd, SIZE)  # zeros; racing processes extend to the same size
        self.map = mmap.mmap(self.fd, SIZE)
        self.words = memoryview(self.map).cast("q")
        self.rebind: list[Callable[[], None]] = []
        self.records: dict[bytes, int] = {}
        self.pid = os.getpid()
        self.worker = -1
        self.sem = self._open_sem()
        self.acquire: Callable[[bool], bool] = self.sem.acquire
        self.release: Callable[[], None] = self.sem.release
        self._join()

    # -- the lock ----------------------------------------------------------------------------

    def _open_sem(self) -> _multiprocessing.SemLock:
        try:
            return _multiprocessing.SemLock(_SEMAPHORE, 1, 1, self.sem_name, False)
        except FileExistsError:
            return _multiprocessing.SemLock._rebuild(0, _SEMAPHORE, 1, self.sem_name)

    def lock(self) -> None:
        """Take the segment lock (callers try `acquire(False)` first, inline)."""
        if not self.acquire(False):
            self.wait()
        else:
            self.words[H_OWNER] = self.worker + 1

    def wait(self) -> None:
        """The lock is taken: wait for it, and free it from an owner that died holding it."""
        words = self.words
        suspect = -1
        while not self.sem.acquire(True, STALL_S):
            owner = words[H_OWNER] - 1
            if owner == self.worker or owner < 0 or self.alive(owner):
                suspect = -1
                continue
            if owner == suspect:  # dead over two waits: it died holding the lock
                words[H_OWNER] = 0
                with contextlib.suppress(ValueError):  # released meanwhile
                    self.sem.release()
                suspect = -1
            else:
                suspect = owner
        words[H_OWNER] = self.worker + 1

    # -- worker slots ------------------------------------------------------------------------

    def alive(self, slot: int) -> bool:
        """Whether the process registered in `slot` still lives (its liveness byte is locked)."""
        if slot == self.worker:
            return True
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, LIVE_BASE + slot)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return True
            raise
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, LIVE_BASE + slot)
        return False

    def _join(self) -> None:
        """Register this process in a free worker slot (resetting a segment nobody uses)."""
        self.lock()
        try:
            w = self.words
            pids = [w[WORKERS_AT + i] for i in range(MAX_WORKERS)]
            live = [i for i, pid in enumerate(pids) if pid and pid != self.pid and self.alive(i)]
            if w[H_MAGIC] != MAGIC or w[H_LAYOUT] != RECORD_WORDS or not live:
                owner = w[H_OWNER]
                # A fresh instance (or a layout from another version): zero the file by
                # truncating it, which keeps it sparse (writing zeros would allocate it all).
                os.ftruncate(self.fd, 0)
                os.ftruncate(self.fd, SIZE)
                w[H_MAGIC] = MAGIC
                w[H_LAYOUT] = RECORD_WORDS
                w[H_OWNER] = owner
                self.records.clear()
            else:
                self._sweep(live)
            for i in range(MAX_WORKERS):
                if w[WORKERS_AT + i] == 0:
                    try:
                        fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, LIVE_BASE + i)
                    except OSError:
                        continue  # a process that registered and has not written its pid yet
                    w[WORKERS_AT + i] = self.pid
                    self.worker = i
                    if w[H_HIGH] <= i:
                        w[H_HIGH] = i + 1  # readers sum the stripes of slots below it
                    break
            else:
                raise RuntimeError(f"instpy: all {MAX_WORKERS} worker slots of {self.path} "
                                   "are taken by live processes; give each instance its own "
                                   "INSTPY_INSTANCE")
            w[H_OWNER] = self.worker + 1
        finally:
            self.release()

    def sweep(self, now_ns: int) -> None:
        """With the lock held: reclaim what dead workers held, at most every SWEEP_NS."""
        w = self.words
        if now_ns < w[H_SWEEP]:
            return
        w[H_SWEEP] = now_ns + SWEEP_NS
        self._sweep(None)

    def poll(self, now_ns: int) -> None:
        """Sweep if one is due (readers: a dead worker's stripe must not count forever)."""
        if now_ns < self.words[H_SWEEP] or self.worker < 0:
            return
        self.lock()
        try:
            self.sweep(now_ns)
        finally:
            self.release()

    def _sweep(self, live: list[int] | None) -> None:
        w = self.words
        for i in range(MAX_WORKERS):
            pid = w[WORKERS_AT + i]
            if not pid or i == self.worker:
                continue
            if live is not None:
                if i in live:
                    continue
            elif self.alive(i):
                continue
            self._reclaim(i)

    def _reclaim(self, slot: int) -> None:
        w = self.words
        from instpy.runtime.hotspot.shared import LEDGER_KIND, reclaim_ledger
        from instpy.runtime.shared.inbound import INBOUND_KIND
        from instpy.runtime.shared.inbound import reclaim as reclaim_inbound
        from instpy.runtime.stat.shared import KIND
        from instpy.runtime.stat.shared import reclaim as reclaim_striped
        for r in range(w[H_RECORDS]):
            at = RECORDS_AT + r * RECORD_WORDS
            kind = w[at + KIND]
            if kind == INBOUND_KIND:
                reclaim_inbound(w, at, slot)
            elif kind == 0:
                reclaim_striped(w, at, slot)
            elif kind == LEDGER_KIND:
                reclaim_ledger(w, at, slot)
            # other rule state (shared/state.py) holds nothing per worker
        w[WORKERS_AT + slot] = 0

    def record(self, key: bytes, init: Callable[[memoryview, int], None]) -> int | None:
        """The word offset of the record named `key` (16 bytes), allocated on first use and
        set up by `init(words, offset)`; None when the segment is full."""
        found = self.records.get(key)
        if found is not None:
            return found
        a = int.from_bytes(key[:8], "little", signed=True)
        b = int.from_bytes(key[8:16], "little", signed=True)
        self.lock()
        try:
            w = self.words
            n = w[H_RECORDS]
            for r in range(n):
                at = RECORDS_AT + r * RECORD_WORDS
                if w[at] == a and w[at + 1] == b:
                    break
            else:
                if n >= MAX_RECORDS:
                    return None
                at = RECORDS_AT + n * RECORD_WORDS
                w[at] = a
                w[at + 1] = b
                init(w, at)
                w[H_RECORDS] = n + 1
        finally:
            self.release()
        self.records[key] = at
        return at

    # -- fork and exit -----------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: its own semaphore handle and worker slot, then rebind users."""
        self.pid = os.getpid()
        self.worker = -1
        self.sem = self._open_sem()
        self.acquire = self.sem.acquire
        self.release = self.sem.release
        self._join()
        for rebind in list(self.rebind):
            rebind()

    def abandon(self) -> None:
        """Drop a segment whose file was removed under us before anyone else used it."""
        self.worker = -1
        os.close(self.fd)  # drops this process's liveness lock on that file
        with contextlib.suppress(OSError):
            _multiprocessing.sem_unlink(self.sem_name)

    def leave(self) -> None:
        """At exit: free the worker slot; the last process out removes the file and semaphore."""
        if self.pid != os.getpid() or self.worker < 0:
            return
        self.lock()
        try:
            w = self.words
            self._reclaim(self.worker)
            others = any(w[WORKERS_AT + i] and i != self.worker and self.alive(i)
                         for i in range(MAX_WORKERS))
            if not others:
                with contextlib.suppress(OSError):
                    if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                        os.unlink(self.path)  # (not a newer file at the same path)
                with contextlib.suppress(OSError):
                    _multiprocessing.sem_unlink(self.sem_name)
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, LIVE_BASE + self.worker)
            self.worker = -1
        finally:
            self.release()
        _alive.discard(self)
        if _segments.get(self.path) is self:
            del _segments[self.path]


_segments: dict[str, Segment] = {}
_open_lock = threading.Lock()
_alive: weakref.WeakSet[Segment] = weakref.WeakSet()


def segment_for(key: str, directory: str | None = None) -> Segment:
    """This process's segment of instance `key` (one per path: a second open file would drop
    the liveness lock when closed)."""
    folder = directory or shared_dir()
    path = os.path.abspath(os.path.join(folder, f"instpy-{key}.seg"))
    with _open_lock:
        seg = _segments.get(path)
        if seg is None or seg.pid != os.getpid():
            remove_stale(folder, keep=path)
            seg = Segment(path)
            for _ in range(3):
                try:
                    if os.stat(path).st_ino == os.fstat(seg.fd).st_ino:
                        break
                except OSError:
                    pass
                # A stale-segment sweep removed the file between our open and our join: the
                # others will meet on the new file, so must we.
                seg.abandon()
                seg = Segment(path)
            _segments[path] = seg
            _alive.add(seg)
        return seg


def sem_name(path: str, inode: int) -> str:
    """The semaphore of the segment file `path` with inode `inode`: the path is spelled out
    (quoted: no slash in a name) so that a later process can tell whether its file still
    exists; a path too long for a name gets a digest, and such a semaphore is only removed with
    its segment."""
    quoted = urllib.parse.quote(path, safe="")
    if len(quoted) > 200:
        quoted = "h" + hashlib.sha1(path.encode()).hexdigest()
    return f"/{_SEM_PREFIX}{inode}-{quoted}"


def _sem_owner(name: str) -> tuple[int, str] | None:
    """(inode, segment path) named by a semaphore of ours (see `sem_name`), else None."""
    ino, _, quoted = name.removeprefix(_SEM_PREFIX).partition("-")
    if not ino.isdigit() or not quoted.startswith("%2F"):
        return None  # another layout (or a digest): not ours to judge
    return int(ino), urllib.parse.unquote(quoted)


def remove_stale(folder: str, keep: str, min_age_s: float = 10.0) -> None:
    """Remove segments (and their semaphores) no live process is registered in, and
    semaphores whose segment file is gone.

    Workers that exit together each see the others still alive, so the last-one-out rule in
    `leave` misses some; a SIGKILLed instance never runs it; a segment folder may be deleted
    with the segment in it. A file younger than `min_age_s` is left alone: its creator may not
    have registered yet."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith("instpy-") and n.endswith(".seg")]
    except OSError:
        names = []
    now = time.time()
    for name in names:
        path = os.path.abspath(os.path.join(folder, name))
        if path == keep or path in _segments:
            continue  # this process's own: opening and closing it would drop its locks
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if now - st.st_mtime < min_age_s:
                continue
            for i in range(MAX_WORKERS):
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, LIVE_BASE + i)
                except OSError:
                    break  # a live worker: in use
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                with contextlib.suppress(OSError):
                    _multiprocessing.sem_unlink(sem_name(path, st.st_ino))
        finally:
            os.close(fd)  # drops the probe locks
    remove_orphan_semaphores()


def remove_orphan_semaphores(sem_dir: str = SEM_DIR) -> list[str]:
    """Unlink our semaphores whose segment file no longer exists (or is another file now):
    no process can meet on them any more. Returns the names removed."""
    try:
        names = [n[4:] for n in os.listdir(sem_dir) if n.startswith("sem." + _SEM_PREFIX)]
    except OSError:
        return []
    removed = []
    for name in names:
        owner = _sem_owner(name)
        if owner is None:
            continue
        inode, path = owner
        try:
            if os.stat(path).st_ino == inode:
                continue  # its segment: removed together by `leave` or the stale sweep
        except OSError:
            pass
        with contextlib.suppress(OSError):
            _multiprocessing.sem_unlink("/" + name)
            removed.append(name)
    return removed


def _after_fork_in_child() -> None:
    global _open_lock
    _open_lock = threading.Lock()  # another thread may have held it at the fork
    for seg in list(_alive):
        if seg.worker < 0:
            continue  # left (its file and semaphore may be gone)
        try:
            seg.after_fork()
        except Exception as exc:  # this child then has no slot: it must not use the segment
            seg.worker = -1
            logging.getLogger("instpy.governance").error(
                "instpy: shared segment %s unusable after fork: %s", seg.path, exc)


def _at_exit() -> None:
    for seg in list(_alive):
        with contextlib.suppress(Exception):  # exit goes on; the next start resets it
            seg.leave()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)


"""SQLite as the store skeleton's ``Dialect``: one connection per thread, and writes that
take the whole database's lock up front.

``BEGIN IMMEDIATE`` makes every write wait for the one before it, so nothing a write
read can change before it commits: no run or limit key needs a lock of its own, and a
claim or a reclaim never finds a run held by someone else. A writer waits for another
process's lock up to ``timeout`` seconds (saying so once in the log when it is long),
then gives up with ``StoreUnavailableError``. Reads take no lock (WAL), so claims and
notification polls look read-only first (``peeks``). Wake-ups for other processes
(``notify``) are kept until the write commits, then sent over Unix datagram sockets
(``keel.store.sqlite.wake``): a worker woken before the commit is visible would find
nothing, and a write rolled back sends nothing. The log is checkpointed on a thread of
its own (``keel.store.sqlite.checkpoints``), not inside the commit that fills it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, TypeVar, cast

from keel.errors import StoreError, StoreUnavailableError
from keel.store.limits import Candidate
from keel.store.sql import load_queries
from keel.store.sqlite.checkpoints import WRITER_FALLBACK_PAGES, Checkpointer
from keel.store.sqlite.faults import is_busy, store_error
from keel.store.sqlite.wake import WakeSockets, wake_folder
from keel.store.sqlstore.dialect import Cursor
from keel.store.wakeups import Wakeup, encode_all

log = logging.getLogger("keel.store.sqlite")
T = TypeVar("T")
#: seconds SQLite itself waits for a lock before the store looks again (and logs once)
_BUSY_SLICE = 5.0


class SQLiteDialect:
    """The connections to one SQLite file, and how the skeleton uses them."""

    queries = load_queries("keel.store.sqlite")
    log = log
    retryable: tuple[type[Exception], ...] = ()
    peeks = True
    notifies = True

    def __init__(self, path: Path, synchronous: str, timeout: float) -> None:
        self.path, self.synchronous, self.timeout = path, synchronous, timeout
        self._writers = threading.Lock()
        #: the thread that holds ``_writers`` (None: none)
        self._writer: int | None = None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        folder = wake_folder(path)
        #: the wake-up sockets beside the file (None: ``:memory:``, or a path too long)
        self.wakes = None if folder is None else WakeSockets(folder)
        self.notifies = self.wakes is not None
        #: checkpoints of the log, off the writers' path (None: ``:memory:``, no log)
        self.checkpoints = None if str(path) == ":memory:" else Checkpointer(path, synchronous)

    def at_boundary(self, call: Callable[[], T]) -> T:
        """SQLite's errors leave a public method as ``StoreError``s."""
        try:
            return call()
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from None

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout={int(min(self.timeout, _BUSY_SLICE) * 1000)}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                if self.checkpoints is not None:
                    conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_FALLBACK_PAGES}")
            except BaseException:
                conn.close()
                raise
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        if self.wakes is not None:
            self.wakes.close()
        if self.checkpoints is not None:
            self.checkpoints.close()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def read(self) -> AbstractContextManager[Cursor]:
        """This thread's connection as it is: a read in WAL mode takes no lock."""
        return nullcontext(self.connection())

    @contextmanager
    def write(self) -> Iterator[Cursor]:
        """One write transaction. SQLite rolls some failed transactions back itself
        (a full disk): the rollback here must not hide the error that caused it. The
        wake-ups ``notify`` kept are sent once the commit is visible, never before."""
        # this process's writers queue on a lock of its own: SQLite's busy handler
        # sleeps 1, 2, 5... 100 ms between tries, so threads left to it starve each
        # other (a p99 of 100+ ms under 16 request threads); across processes it still
        # decides
        if self._writer == threading.get_ident():  # would wait for itself for ``timeout``
            raise StoreError("a write was begun inside another write of the same thread")
        started = time.monotonic()
        if not self._writers.acquire(timeout=self.timeout):
            raise StoreUnavailableError(
                f"{self.path}: other writes of this process kept the write lock for "
                f"{self.timeout:.0f} s (they may wait for another process); try again"
            )
        self._writer = threading.get_ident()
        try:
            conn = self.connection()
            self._begin(conn, started)
            local = self._local
            local.notes = None
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                local.notes = None
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        finally:
            self._writer = None
            self._writers.release()
        if self.checkpoints is not None:  # committed: nothing here may fail the write
            self.checkpoints.committed()
        notes: set[Wakeup] | None = local.notes
        if notes:
            local.notes = None
            if self.wakes is not None:
                self.wakes.send(encode_all(notes))

    def _begin(self, conn: sqlite3.Connection, started: float) -> None:
        """Take the write lock, waiting until ``timeout`` after ``started`` (when this
        write began to wait, in this process first) for another process to let go of it
        (saying once that it waits when it takes long)."""
        said = False
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                waited = time.monotonic() - started
                if waited >= self.timeout - _BUSY_SLICE / 2:
                    raise StoreUnavailableError(
                        f"{self.path} stayed locked by another process for {waited:.0f} s "
                        "(it holds a write transaction open): stop that process or wait "
                        "for it to finish, then try again"
                    ) from None
                if not said:
                    log.warning("%s is locked by another process; waiting up to %.0f s",
                                self.path, self.timeout)  # fmt: skip
                    said = True

    @contextmanager
    def savepoint(self, cur: Cursor) -> Iterator[object]:
        conn = cast(sqlite3.Connection, cur)
        conn.execute("SAVEPOINT transition")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # not when SQLite rolled the whole write back itself
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK TO transition")
                    conn.execute("RELEASE transition")
            raise
        conn.execute("RELEASE transition")

    def array(self, values: Sequence[Any]) -> str:
        return json.dumps(list(values))

    def param(self, name: str) -> str:
        return f":{name}"

    def insert(self, cur: Cursor, name: str, rows: Sequence[Sequence[Any]]) -> None:
        """``executemany``: in process, each row costs a step of the statement, not a trip."""
        cur.executemany(self.queries[name], rows)

    # The write lock holds the whole database: nothing else to lock.

    def lock_runs(self, cur: Cursor, run_ids: Sequence[str]) -> None:
        pass

    def lock_free_runs(self, cur: Cursor, run_ids: Sequence[str]) -> set[str]:
        return set(run_ids)

    def lock_key(self, cur: Cursor, name: str) -> None:
        pass

    def lock_blobs(self, cur: Cursor) -> None:
        pass

    def take_leases(
        self, cur: Cursor, run_id: str, candidates: list[Candidate], owner: str, expires: float
    ) -> list[Candidate]:
        """All of them: nothing changed since the claim looked, under the same lock."""
        taking = [(owner, expires, run_id, c.node, c.item) for c in candidates]
        cur.executemany(self.queries["take_lease"], taking)
        return candidates

    def notify(self, cur: Cursor, notes: set[Wakeup]) -> None:
        """Keep ``notes`` for when this thread's write commits (``write`` sends them)."""
        if notes and self.wakes is not None:
            kept: set[Wakeup] | None = self._local.notes
            self._local.notes = notes if kept is None else kept | notes

"""Checkpoints of the write-ahead log, on a thread of their own instead of in a commit.

In WAL mode SQLite copies the log back into the database (a checkpoint) when a commit
leaves it over ``wal_autocheckpoint`` pages, inside that commit: the writer that crosses
the line pays for a thousand pages copied and for the database's fsync. A step writes
about five pages, so on the worker's own thread that was one commit in two hundred
taking milliseconds, some 60-100 µs per step on average (W1, ``bench``).

Here the store's writer connections checkpoint only past ``WRITER_FALLBACK_PAGES`` (a
safety net, should this thread fall far behind or stop), and every ``EVERY_COMMITS``
commits this thread runs a ``PASSIVE`` checkpoint on a connection of its own. A passive
checkpoint takes no writer lock: writers go on while it copies. A commit is as
durable as ``synchronous`` says, whoever checkpoints later, and a checkpoint cut short by
a crash is finished by the next one. With ``synchronous=NORMAL`` the log reaches the
disk at checkpoints, so what a power loss (not a crash of the process) can take is what
was committed since the last one: about 200 commits here, as with SQLite's own default
of 1,000 pages (up to 20,000 pages should this thread stall).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("keel.store.sqlite")

#: commits between two checkpoints: about SQLite's default of 1,000 pages at ~5 per step
EVERY_COMMITS = 200
#: the writer connections' own threshold in pages (~80 MB), reached only when this
#: thread falls far behind: the log must not grow without bound
WRITER_FALLBACK_PAGES = 20_000
#: milliseconds the checkpoint waits on a busy database before trying next time
_BUSY_MS = 1_000


class Checkpointer:
    """Counts a store's commits and checkpoints its log every ``every`` of them."""

    def __init__(self, path: Path, synchronous: str, every: int = EVERY_COMMITS) -> None:
        self.path, self.synchronous, self.every = path, synchronous, every
        #: commits since the last checkpoint was asked for (advisory: a lost count
        #: between threads only moves the next checkpoint by a commit)
        self._commits = 0
        self._due = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        #: checkpoints this thread ran (how a test sees that it works)
        self.done = 0

    def committed(self) -> None:
        self._commits += 1
        if self._commits >= self.every:
            self._commits = 0
            self._ask()

    def _ask(self) -> None:
        """Wake the thread (started on first need). Called after a commit: whatever goes
        wrong here is logged, never raised into the write that committed."""
        try:
            with self._lock:
                if self._stopped:
                    return
                if self._thread is None:
                    thread = threading.Thread(
                        target=self._run, name="keel-checkpoints", daemon=True
                    )
                    thread.start()
                    self._thread = thread
            self._due.set()
        except RuntimeError as exc:  # no thread could be started: the writers checkpoint
            log.warning("%s: no checkpoint thread (%s); commits checkpoint past %d pages",
                        self.path, exc, WRITER_FALLBACK_PAGES)  # fmt: skip

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopped:
                    return
                self.checkpoint(conn)
        except sqlite3.Error as exc:  # the writers' own threshold takes over
            log.warning("%s: checkpoints stopped (%s); commits checkpoint past %d pages",
                        self.path, exc, WRITER_FALLBACK_PAGES)  # fmt: skip
        finally:
            if conn is not None:
                conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int] | None:
        """One passive checkpoint: the frames in the log and how many it copied back
        (None: it did not run; that is logged and the next one tries again)."""
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError as exc:  # busy, or a disk error: said, not fatal
            log.info("%s: a checkpoint did not run (%s); the next one tries again",
                     self.path, exc)  # fmt: skip
            return None
        self.done += 1
        return int(row[1]), int(row[2])

    def close(self) -> None:
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._due.set()
        if thread is not None:
            thread.join(timeout=5)

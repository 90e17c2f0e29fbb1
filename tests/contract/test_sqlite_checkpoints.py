"""The SQLite store checkpoints its write-ahead log on a thread of its own, so a commit
never pays for copying the log back: the writers' own threshold is only a safety net."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bench.flows import chain
from keel.runtime.operations.control import start_run
from keel.store.sqlite import SQLiteStore
from keel.store.sqlite.checkpoints import WRITER_FALLBACK_PAGES, Checkpointer

#: a hang guard while waiting for the thread, not a measure of speed
PATIENCE = 30.0


def _wait_for(condition: object) -> None:
    give_up = time.monotonic() + PATIENCE
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < give_up, "the checkpoint thread never ran"
        time.sleep(0.01)


def test_writers_leave_checkpoints_to_the_thread(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        conn = store.dialect.connection()
        (pages,) = conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert pages == WRITER_FALLBACK_PAGES
        checkpoints = store.dialect.checkpoints
        assert isinstance(checkpoints, Checkpointer)
        checkpoints.every = 5
        spec = chain(2)
        for index in range(12):  # each start is a commit (two with the spec)
            start_run(store, spec, {"start": index})
        _wait_for(lambda: checkpoints.done >= 1)
        thread = checkpoints._thread
        assert thread is not None
        assert thread.name == "keel-checkpoints"
    finally:
        store.close()
    assert not thread.is_alive(), "closing the store stops its checkpoint thread"


def test_a_checkpoint_copies_the_log_back(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    store = SQLiteStore(path)
    try:
        checkpoints = store.dialect.checkpoints
        assert checkpoints is not None
        checkpoints.every = 10**9  # only when the test asks
        spec = chain(2)
        for index in range(5):
            start_run(store, spec, {"start": index})
        conn = sqlite3.connect(path)
        copied = checkpoints.checkpoint(conn)
        conn.close()
        assert copied is not None
        assert checkpoints.done == 1
        frames, done = copied
        assert frames > 0, "the runs' commits were in the log"
        assert done == frames, "and the checkpoint copied all of it back"
    finally:
        store.close()


def test_a_store_in_memory_has_no_checkpoint_thread() -> None:
    store = SQLiteStore(":memory:")
    try:
        assert store.dialect.checkpoints is None
        start_run(store, chain(1), {"start": 1})
    finally:
        store.close()

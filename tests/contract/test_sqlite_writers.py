"""Writers of one process on one SQLite file queue on the process's own lock before
SQLite's: many request threads all get their turn (SQLite's busy back-off would starve
some), and a write begun inside a write of the same thread is an error at once, not a
wait for itself."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from keel.errors import StoreError
from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import Driver, make_spec


def test_many_threads_writing_at_once_all_commit(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    errors: list[BaseException] = []

    def start(n: int) -> None:
        try:
            for k in range(10):
                Driver(store, make_spec("t"), f"r{n}-{k}").start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.list_runs(limit=1000)) == 160
    store.close()


def test_a_write_inside_a_write_of_the_same_thread_is_refused_at_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    dialect = store.dialect
    with (
        dialect.write(),
        pytest.raises(StoreError, match="inside another write"),
        dialect.write(),
    ):
        pass
    with dialect.write() as cur:  # the lock was let go: the next write goes
        cur.execute("SELECT 1")
    store.close()

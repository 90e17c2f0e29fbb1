"""The database clock: leases and timers judged by the server's time, whatever this
host's wall clock says."""

from __future__ import annotations

import time

import pytest

from keel.runtime.clock import DatabaseClock, SystemClock, clock_for
from keel.store.sqlite import SQLiteStore

SERVER = 1_800_000_000.0  # far from this host's time.time()


class Server:
    """A database whose clock reads ``at`` (moved by the test)."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.reads = 0

    def read(self) -> float:
        self.reads += 1
        return self.at


def test_the_clock_tells_the_servers_time_not_this_hosts() -> None:
    clock = DatabaseClock(Server(SERVER).read)

    now = clock.now()

    assert SERVER <= now < SERVER + 5  # the host's time.time() is decades away
    assert abs(now - time.time()) > 3600


def test_a_wrong_wall_clock_on_this_host_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = DatabaseClock(Server(SERVER).read)
    before = clock.now()
    monkeypatch.setattr(time, "time", lambda: 0.0)  # the host's clock jumps

    assert clock.now() >= before
    assert clock.now() < SERVER + 5


def test_it_reads_the_server_again_after_resync_every_and_never_goes_back() -> None:
    server = Server(SERVER)
    clock = DatabaseClock(server.read, resync_every=0.0)
    first = clock.now()
    server.at = SERVER - 100  # the server's clock was set back

    assert clock.now() >= first  # never backwards
    assert server.reads >= 2


def test_a_failed_reading_keeps_counting_from_the_last_one() -> None:
    server = Server(SERVER)
    clock = DatabaseClock(server.read, resync_every=0.0)
    first = clock.now()

    def broken() -> float:
        raise OSError("connection lost")

    clock._read = broken  # the database went away
    assert first <= clock.now() < SERVER + 5


def test_an_embedded_store_uses_this_hosts_clock(tmp_path: object) -> None:
    from pathlib import Path

    store = SQLiteStore(Path(str(tmp_path)) / "keel.db")
    try:
        assert isinstance(clock_for(store), SystemClock)
    finally:
        store.close()


def test_a_shared_store_uses_the_databases_clock() -> None:
    from tests.postgres import open_postgres

    store = open_postgres()
    try:
        clock = clock_for(store)
        assert isinstance(clock, DatabaseClock)
        server = store.database_time()
        assert server is not None
        assert abs(clock.now() - server) < 5
    finally:
        store.close()
        store.drop_schema()

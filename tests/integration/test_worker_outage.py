"""A worker whose database is gone for longer than its store keeps retrying: the store
gives up with ``StoreUnavailableError``, the worker says once that it waits for the
database, and when the database is back it gives back the attempts it held (their
leases may have expired meanwhile, and a write whose answer was lost may have leased it
attempts it does not know of) and goes on. The run still finishes, each step's result
recorded once, and nothing is logged as a traceback.

The outage is a real one for the worker: its connections go through a proxy that cuts
them all and refuses new ones (``tests.pgproxy``); the test reads the database directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from keel.engine.events import NodeReclaimed, NodeStarted, NodeSucceeded
from keel.runtime.operations.control import start_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.store.postgres import PostgresStore
from tests.chaos import fanflow
from tests.pgproxy import Proxy
from tests.postgres import fresh_url, open_postgres

#: a hang guard, not a timed assertion
DEADLINE = 90.0


class Said(logging.Handler):
    """Sets an event when a record containing ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@pytest.fixture
def proxied() -> Iterator[tuple[PostgresStore, PostgresStore, Proxy]]:
    """The same fresh schema opened directly and through a proxy that retries briefly."""
    url = fresh_url()
    direct = open_postgres(url)
    proxy = Proxy()
    behind = PostgresStore(proxy.url(url), reconnect_for=0.5)
    yield direct, behind, proxy
    behind.close()
    proxy.close()
    direct.drop_schema()
    direct.close()


@pytest.mark.timeout(180)
def test_a_worker_waits_out_a_long_outage_gives_back_its_attempts_and_finishes(
    proxied: tuple[PostgresStore, PostgresStore, Proxy],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    direct, behind, proxy = proxied
    monkeypatch.setenv("KEEL_TEST_SLEEP", "0.5")  # the map's items run while the cut comes
    caplog.set_level(logging.INFO, logger="keel")
    waiting, back = Said("waiting for the database"), Said("the database is back")
    for said in (waiting, back):
        logging.getLogger("keel.worker").addHandler(said)
    worker = Worker(behind, WorkerOptions(concurrency=8, fallback_poll=0.2))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        run_id = start_run(direct, fanflow.fan.spec, {"n": 3}, origin="tests.chaos.fanflow").id
        deadline = time.monotonic() + DEADLINE
        while not any(
            isinstance(e.event, NodeStarted) and e.event.item is not None
            for e in direct.history(run_id)
        ):
            assert time.monotonic() < deadline, "the map's items never started"
            time.sleep(0.05)

        proxy.down()
        assert waiting.event.wait(DEADLINE), "the worker never said it waits"
        proxy.up()
        assert back.event.wait(DEADLINE), "the worker never saw the database come back"
        while (record := direct.get_run(run_id)).status != "succeeded":  # one read a look
            assert record.status == "running", record
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(DEADLINE)
        worker.close()
        for said in (waiting, back):
            logging.getLogger("keel.worker").removeHandler(said)

    assert direct.get_run(run_id).output == fanflow.expected(3)
    history = [stored.event for stored in direct.history(run_id)]
    given_back = [e for e in history if isinstance(e, NodeReclaimed)]
    assert given_back, "the items held during the outage were given back"
    assert {e.reason for e in given_back} == {"its worker lost the database"}
    succeeded = Counter((e.node, e.item) for e in history if isinstance(e, NodeSucceeded))
    assert set(succeeded.values()) == {1}, succeeded
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_giving_back_waits_for_a_run_another_process_is_committing_to() -> None:
    """A reclaim skips a run locked by another transaction; a worker giving back its
    attempts (after an outage, or when it stops) must not leave one of them behind, still
    its own and renewed with its other leases, though nothing runs it any more."""
    url = fresh_url()
    store = open_postgres(url)
    try:
        run_id = start_run(store, fanflow.fan.spec, {"n": 1}).id
        worker = Worker(store, WorkerOptions(concurrency=1))
        (claimed,) = store.claim(worker.owner, 1, worker.clock.now(), 30.0, run_id=run_id)
        blocker = psycopg.connect(store.conninfo)
        blocker.execute(f'SET search_path TO "{store.schema}"')
        blocker.execute("SELECT id FROM runs WHERE id = %s FOR UPDATE", (run_id,))
        giving_back = threading.Thread(target=worker.release, args=("test",))
        giving_back.start()
        threading.Event().wait(0.3)  # lets it look at least once while the run is busy
        blocker.rollback()
        blocker.close()
        giving_back.join(timeout=DEADLINE)
        assert not giving_back.is_alive()
        assert worker.owner not in store.lease_owners()
        reclaimed = [s.event for s in store.history(run_id) if isinstance(s.event, NodeReclaimed)]
        assert [(e.node, e.owner) for e in reclaimed] == [(claimed.lease.node, worker.owner)]
        worker.close()
    finally:
        store.drop_schema()
        store.close()

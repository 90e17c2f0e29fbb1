"""A transition may write more rows than one SQL statement takes: a map of 10,000 items
queues them all in one transition. PostgreSQL refuses a statement with more than 65,535
parameters (9,362 event rows), so the store splits what it inserts."""

from __future__ import annotations

from bench.flows import chain
from keel.engine.events import NodeStarted
from keel.runtime.operations.control import start_run
from keel.store.chain import event_json
from keel.store.protocol import Store
from keel.store.sqlstore.store import SQLStore

ROWS = 10_000


def test_more_event_rows_than_one_statement_takes_are_all_inserted(store: Store) -> None:
    assert isinstance(store, SQLStore)
    run = start_run(store, chain(1), {"start": 0})
    payload = event_json(NodeStarted(node="n0", attempt=1, worker="bulk"))
    first = 1_000
    rows = [(run.id, first + i, 1.0, "node_started", "n0", payload, "0" * 64) for i in range(ROWS)]
    with store.dialect.write() as cur:
        store.dialect.insert(cur, "insert_event", rows)
    stored = store.history(run.id, after_seq=first - 1)
    assert [event.seq for event in stored] == list(range(first, first + ROWS))

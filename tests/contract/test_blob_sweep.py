"""The blobs a prune leaves unnamed are removed (``Store.sweep_blobs``), on every backend.

A blob is shared by content: a pruned run's large value may be a kept run's too, and
then it stays; a run's ``input`` or ``output`` column names blobs as its events do. A
dry run counts and removes nothing. On PostgreSQL, a writer that named an old blob and
has not committed yet keeps it: the sweep waits for it. The mark reads the rows naming
blobs by their partial indexes, never every event (the query plans are checked).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from keel.audit.retention import make_tombstone, prune
from keel.audit.signing import SigningKey
from keel.engine import NodeSucceeded
from keel.errors import StoreUnavailableError
from keel.runtime.runs import RunCache
from keel.runtime.views.audit import verify_run
from keel.store import Store
from keel.store.blobs import MARKER, blob_name
from keel.store.chain import canonical_json
from keel.store.postgres import PostgresStore
from keel.store.sql import load_queries
from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import T0, Driver, three_node_spec
from tests.postgres import open_postgres

KEY = SigningKey.generate()
CUTOFF = T0 + 1000
NOW = T0 + 90 * 86_400
THRESHOLD = 1_000
#: a's output in the old run only
OLD_ONLY = {"old": "o" * 2_000}
#: b's output in the old run, a's in the young one: one blob for both
SHARED = {"shared": "s" * 2_000}


def sql(store: Store, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run ``query`` on the store's database itself, past the store."""
    with store.dialect.write() as cur:  # type: ignore[attr-defined]
        rows = cur.execute(query, params)
        return list(rows.fetchall()) if query.lstrip().upper().startswith("SELECT") else []


def blob_names(store: Store) -> set[str]:
    return {str(name) for (name,) in sql(store, "SELECT name FROM blobs")}


def size(value: Any) -> int:
    return len(canonical_json(value).encode())


def finished(store: Store, run_id: str, a_output: Any, b_output: Any, at: float = T0) -> Driver:
    """A finished ``three_node_spec`` run: ``a`` and ``b`` output these (``b`` takes
    ``a``'s as its argument ``x``), ``c`` outputs ``["C"]``."""
    driver = Driver(store, three_node_spec(), run_id, {"n": 2})
    driver.now = at
    driver.start()
    (a,) = driver.claim()
    driver.succeed(a.lease, a_output)
    for claimed in sorted(driver.claim(), key=lambda c: c.lease.node):
        driver.succeed(claimed.lease, b_output if claimed.lease.node == "b" else ["C"])
    return driver


@pytest.fixture
def small(store: Store) -> Store:
    """The store with a threshold of 1,000 characters."""
    store.blob_threshold = THRESHOLD  # type: ignore[attr-defined]
    return store


def old_and_young(store: Store) -> dict[str, str]:
    """Run ``old`` (ended before ``CUTOFF``: outputs ``OLD_ONLY`` then ``SHARED``) and run
    ``young`` (after it: ``SHARED`` then a small value); the blob names by what they are."""
    finished(store, "old", OLD_ONLY, SHARED)
    finished(store, "young", SHARED, 1, at=CUTOFF + 10)
    names = {
        "old_only": blob_name(canonical_json(OLD_ONLY)),
        "shared": blob_name(canonical_json(SHARED)),
        "old_output": blob_name(canonical_json({"b": SHARED, "c": ["C"]})),
    }
    assert blob_names(store) == set(names.values())
    return names


def verified(store: Store, run_id: str) -> tuple[tuple[str, ...], list[str]]:
    report, mismatches = verify_run(store, store.get_run(run_id), RunCache(store).state)
    return report.problems, mismatches


# --- what goes and what stays ----------------------------------------------------------------


def test_a_pruned_runs_blobs_go_and_one_a_kept_run_shares_stays(small: Store) -> None:
    names = old_and_young(small)

    report = prune(small, CUTOFF, now=lambda: NOW, key=KEY)

    assert report.pruned == ["old"]
    assert blob_names(small) == {names["shared"]}
    assert (report.blobs, report.blob_bytes) == (
        2,
        size(OLD_ONLY) + size({"b": SHARED, "c": ["C"]}),
    )
    assert report.to_data()["blobs"] == 2
    young_a = next(s.event for s in small.history("young") if isinstance(s.event, NodeSucceeded))
    assert young_a.output == SHARED
    assert verified(small, "young") == ((), [])
    assert small.sweep_blobs() == (0, 0)  # a second sweep finds nothing more


def test_a_dry_run_counts_the_blobs_that_would_go_and_removes_none(small: Store) -> None:
    old_and_young(small)
    before = blob_names(small)

    dry = prune(small, CUTOFF, now=lambda: NOW, key=KEY, dry_run=True)

    assert dry.pruned == ["old"]
    assert (dry.blobs, dry.blob_bytes) == (2, size(OLD_ONLY) + size({"b": SHARED, "c": ["C"]}))
    assert blob_names(small) == before
    assert small.get_run("old").pruned_at is None
    done = prune(small, CUTOFF, now=lambda: NOW, key=KEY)
    assert (done.blobs, done.blob_bytes) == (dry.blobs, dry.blob_bytes)


def test_a_sweep_with_nothing_unnamed_removes_nothing(small: Store) -> None:
    assert small.sweep_blobs() == (0, 0)  # no blob at all
    names = old_and_young(small)

    assert small.blobs_to_sweep() == (0, 0)
    assert small.sweep_blobs() == (0, 0)
    assert blob_names(small) == set(names.values())
    assert verified(small, "old") == ((), [])


def test_a_blob_only_a_runs_column_names_stays(small: Store) -> None:
    """A run's input column names its blob (as its first event does): with the events
    gone, the column alone keeps it, and once the column no longer names it, it goes."""
    big_input = {"n": 2, "document": "d" * 2_000}
    Driver(small, three_node_spec(), "kept", big_input).start()
    name = blob_name(canonical_json(big_input))
    ((column,),) = sql(small, "SELECT input FROM runs WHERE id = 'kept'")
    assert column == name
    sql(small, "DELETE FROM events WHERE run_id = 'kept'")

    assert small.sweep_blobs() == (0, 0)
    assert name in blob_names(small)

    sql(small, "UPDATE runs SET input = 'null' WHERE id = 'kept'")
    assert small.sweep_blobs() == (1, size(big_input))
    assert name not in blob_names(small)


def test_a_run_named_by_ignoring_is_left_out_of_the_count_only(small: Store) -> None:
    names = old_and_young(small)

    assert small.blobs_to_sweep(["old"]) == (2, size(OLD_ONLY) + size({"b": SHARED, "c": ["C"]}))
    assert small.blobs_to_sweep(["old", "young"]) == (
        3,
        sum(map(size, (OLD_ONLY, SHARED))) + size({"b": SHARED, "c": ["C"]}),
    )
    assert blob_names(small) == set(names.values())


# --- a writer naming an old blob while the sweep runs (PostgreSQL) -----------------------------


def _waiting_on_blobs(store: PostgresStore) -> bool:
    """Whether a transaction waits for a lock on the store's blobs table."""
    with psycopg.connect(store.conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = to_regclass(%s) AND NOT granted",
            (f"{store.schema}.blobs",),
        ).fetchone()
    return bool(row and row[0])


@pytest.fixture
def pg_store() -> Iterator[PostgresStore]:
    store = open_postgres()
    store.blob_threshold = THRESHOLD
    yield store
    store.close()
    store.drop_schema()


class Writer:
    """A transition of run ``writer`` whose ``a`` outputs ``OLD_ONLY``, the blob of run
    ``old`` (pruned, so nothing names it): stored (found there) and its event appended
    as ``commit`` does, on a thread, held open before its COMMIT until ``commit``."""

    def __init__(self, store: PostgresStore) -> None:
        driver = Driver(store, three_node_spec(), "writer", {"n": 2})
        driver.start()
        (a,) = driver.claim()
        self.step = driver.step([NodeSucceeded(node="a", attempt=1, output=OLD_ONLY)], (a.lease,))
        self.store = store
        self.appended, self.committing = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._write)
        self.thread.start()
        assert self.appended.wait(30)

    def _write(self) -> None:
        with self.store.dialect.write() as cur:
            self.store.dialect.lock_runs(cur, ["writer"])
            self.store._append(cur, "writer", self.step.events, self.step.at)
            self.appended.set()
            self.committing.wait(30)

    def commit(self) -> None:
        self.committing.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def _pruned_old(store: PostgresStore) -> str:
    """``old_and_young`` with ``old`` pruned and not swept; the name of ``OLD_ONLY``."""
    old_and_young(store)
    (candidate,) = store.prune_candidates(CUTOFF)
    assert store.prune_runs([make_tombstone(candidate, NOW, "ops", KEY)]) == ["old"]
    return blob_name(canonical_json(OLD_ONLY))


def test_a_sweep_waits_for_a_writer_naming_an_old_blob_and_keeps_it(
    pg_store: PostgresStore,
) -> None:
    """The writer found the blob of a pruned run and appended an event naming it,
    uncommitted; the sweep started meanwhile waits for it, then sees the event."""
    name = _pruned_old(pg_store)
    writer = Writer(pg_store)
    swept: list[tuple[int, int]] = []
    sweeping = threading.Thread(target=lambda: swept.append(pg_store.sweep_blobs()))
    sweeping.start()
    deadline = time.monotonic() + 30
    while sweeping.is_alive() and not _waiting_on_blobs(pg_store):
        assert time.monotonic() < deadline, "the sweep neither waited nor ended"
        time.sleep(0.01)
    writer.commit()
    sweeping.join(30)

    assert not sweeping.is_alive()
    assert name in blob_names(pg_store)
    assert swept == [(1, size({"b": SHARED, "c": ["C"]}))]  # the old run's output only
    outputs = [s.event.output for s in pg_store.history("writer")
               if isinstance(s.event, NodeSucceeded)]  # fmt: skip
    assert outputs == [OLD_ONLY]


def test_a_sweep_gives_up_on_a_writer_that_stays_open_and_removes_nothing(
    pg_store: PostgresStore,
) -> None:
    """Writes storing blobs queue behind a waiting sweep: it waits ``blob_lock_timeout``
    at most, then says why and removes nothing."""
    name = _pruned_old(pg_store)
    before = blob_names(pg_store)
    writer = Writer(pg_store)
    pg_store.dialect.blob_lock_timeout = 0.1

    with pytest.raises(StoreUnavailableError, match=r"waited 0\.1 s for transactions that"):
        pg_store.sweep_blobs()

    writer.commit()
    assert blob_names(pg_store) == before
    assert pg_store.sweep_blobs() == (1, size({"b": SHARED, "c": ["C"]}))
    assert name in blob_names(pg_store)


# --- the mark reads the rows naming blobs, by their indexes ------------------------------------


def test_sqlite_reads_the_rows_naming_blobs_by_their_partial_indexes(
    sqlite_store: SQLiteStore,
) -> None:
    queries = load_queries("keel.store.sqlite")
    conn = sqlite_store.dialect.connection()
    params = {"after_run": "", "after_seq": 0, "limit": 500}
    events = [
        str(r[3])
        for r in conn.execute("EXPLAIN QUERY PLAN " + queries["blob_naming_events"], params)
    ]
    runs = [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + queries["blob_naming_runs"])]

    assert events == ["SEARCH events USING INDEX events_naming_blobs ((run_id,seq)>(?,?))"], events
    assert any("COVERING INDEX runs_input_blobs" in step for step in runs), runs
    assert any("COVERING INDEX runs_output_blobs" in step for step in runs), runs
    assert not any(step.startswith("SCAN") and "INDEX" not in step for step in events + runs)


def test_the_index_holds_the_events_that_start_with_the_marker(small: Store) -> None:
    """The queries' ``substr(data, 1, 10)`` is the marker's length, and the index has
    exactly the events that name blobs."""
    assert len(MARKER) == 10
    old_and_young(small)
    naming = sql(small, "SELECT run_id, seq FROM events WHERE substr(data, 1, 10) = "
                        "'{\"$blobs\":' ORDER BY run_id, seq")  # fmt: skip
    every = sql(small, "SELECT run_id, seq, data FROM events ORDER BY run_id, seq")
    assert naming == [(r, s) for r, s, data in every if str(data).startswith(MARKER)]
    assert len(naming) >= 4


def test_postgres_reads_the_rows_naming_blobs_by_their_partial_indexes() -> None:
    """10,000 events, 100 naming blobs: the plans read the indexes, never a whole table
    (an index scan, or a bitmap of the index then those rows)."""
    store = open_postgres()
    try:
        with psycopg.connect(store.conninfo, options=f"-c search_path={store.schema}") as conn:
            conn.execute(
                "INSERT INTO events (run_id, seq, at, kind, node, data, prev_hash) "
                "SELECT 'r' || (i / 100), i % 100 + 1, 0, 'node_succeeded', 'a', "
                "CASE WHEN i % 100 = 0 THEN '{\"$blobs\":[]}' ELSE '{\"kind\":\"x\"}' END, '' "
                "FROM generate_series(0, 9999) AS i"
            )
            conn.execute("ANALYZE events")
            queries = load_queries("keel.store.postgres")
            params = {"after_run": "", "after_seq": 0, "limit": 500}
            events = [
                str(r[0]) for r in conn.execute("EXPLAIN " + queries["blob_naming_events"], params)
            ]
            runs = [str(r[0]) for r in conn.execute("EXPLAIN " + queries["blob_naming_runs"])]
        assert any("Index Scan" in line and "events_naming_blobs" in line for line in events), (
            events
        )
        assert any("runs_input_blobs" in line for line in runs), runs
        assert any("runs_output_blobs" in line for line in runs), runs
        assert not any("Seq Scan" in line for line in events + runs), events + runs
    finally:
        store.close()
        store.drop_schema()

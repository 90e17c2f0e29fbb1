"""What the dashboard reads from the store, on both backends: why a failed run failed
(its row's ``failed_node`` and ``error_type``, written with the status, cleared by a
retry), runs listed and counted by the same filters (a count never disagrees with the
listing), the change feed of runs (every write of a run's row moves it), browser
sessions, and migration 0015 / 0009 filling in the failures of runs that failed before."""

from __future__ import annotations

import inspect
import itertools
import sqlite3
from collections import Counter
from contextlib import nullcontext
from typing import Any

import pytest

from keel.engine import ErrorInfo, NodeFailed
from keel.errors import StoreError
from keel.runtime.clock import FakeClock
from keel.runtime.operations.manual import retry_run
from keel.spec import parse_spec
from keel.store import Store
from keel.store.protocol import Store as StoreProtocol
from keel.store.records import RunChange
from keel.store.sqlite import SQLiteStore
from keel.store.writes import SetLate, Transition
from tests.contract.conftest import T0, Driver, make_spec, raw_sql
from tests.postgres import PostgresStore

# --- why a run failed ---------------------------------------------------------------------


def fail_node(driver: Driver, node: str, error_type: str) -> None:
    """Claim the run's attempts, succeed those before ``node`` and fail ``node`` for
    good with an error of ``error_type``."""
    while True:
        held = {claimed.lease.node: claimed.lease for claimed in driver.claim()}
        if node in held:
            error = ErrorInfo(type=error_type, message="no", retryable=False)
            lease = held[node]
            driver.commit(driver.step([NodeFailed(node=node, attempt=lease.attempt,
                                                  error=error)], (lease,)))  # fmt: skip
            return
        for lease in held.values():
            driver.succeed(lease, "ok")


def failed_run(store: Store, run_id: str, node: str, error_type: str, *, name: str = "t",
               at: float = T0) -> Driver:  # fmt: skip
    driver = Driver(store, make_spec(name), run_id)
    driver.now = at
    driver.start()
    fail_node(driver, node, error_type)
    return driver


def test_a_failed_run_names_its_failing_node_and_error_type_until_it_is_retried(
    store: Store,
) -> None:
    driver = failed_run(store, "r1", "b", "TimeoutError")
    failed = store.get_run("r1")
    assert (failed.status, failed.failed_node, failed.error_type) == (
        "failed", "b", "TimeoutError")  # fmt: skip
    assert store.list_runs(error_type="TimeoutError") == [failed]

    retry_run(store, "r1", by="tester", clock=FakeClock(driver.tick()))

    again = store.get_run("r1")
    assert (again.status, again.failed_node, again.error_type) == ("running", None, None)
    assert store.list_runs(error_type="TimeoutError") == []
    assert store.list_runs(node="b") == []
    assert store.count_runs(node="b") == {}


def test_a_run_failing_through_its_failure_path_names_the_node_that_failed_it(
    store: Store,
) -> None:
    spec = parse_spec({"name": "failing", "on_failure": {"task": "m:alert"},
                       "nodes": [{"id": "a", "task": "m:f"}]})  # fmt: skip
    driver = Driver(store, spec, "r1")
    driver.start()
    fail_node(driver, "a", "KeyError")
    assert store.get_run("r1").status == "failing"
    assert store.get_run("r1").failed_node is None  # not failed yet

    (handler,) = driver.claim()
    driver.succeed(handler.lease, None)  # the handler ran: now the run fails

    record = store.get_run("r1")
    assert (record.status, record.failed_node, record.error_type) == ("failed", "a", "KeyError")


def test_a_run_that_did_not_fail_has_no_failure(store: Store) -> None:
    driver = Driver(store, make_spec(), "r1")
    driver.start()
    driver.cancel()
    record = store.get_run("r1")
    assert (record.status, record.failed_node, record.error_type) == ("cancelled", None, None)


# --- listing and counting by the same filters ---------------------------------------------


@pytest.fixture
def runs(store: Store) -> Store:
    """r1..r3 failed (a KeyError, a TimeoutError, b TimeoutError; r3 of workflow
    "other"), r4 running, r5 cancelled: ten seconds apart, r1 first."""
    failed_run(store, "r1", "a", "KeyError", at=T0)
    failed_run(store, "r2", "a", "TimeoutError", at=T0 + 10)
    failed_run(store, "r3", "b", "TimeoutError", name="other", at=T0 + 20)
    for n, run_id in ((3, "r4"), (4, "r5")):
        driver = Driver(store, make_spec(), run_id)
        driver.now = T0 + 10 * n
        driver.start()
    driver.cancel()
    return store


def ids(store: Store, **filters: Any) -> list[str]:
    return [record.id for record in store.list_runs(**filters)]


def test_runs_are_listed_by_error_type_and_failing_node(runs: Store) -> None:
    assert ids(runs, error_type="TimeoutError") == ["r3", "r2"]
    assert ids(runs, node="a") == ["r2", "r1"]
    assert ids(runs, error_type="TimeoutError", node="a") == ["r2"]
    assert ids(runs, error_type="TimeoutError", status="failed") == ["r3", "r2"]
    assert ids(runs, error_type="TimeoutError", status="running") == []
    assert ids(runs, error_type="TimeoutError", workflow="t") == ["r2"]
    assert ids(runs, node="b", created_after=T0 + 20) == ["r3"]
    assert ids(runs, error_type="TimeoutError", limit=1) == ["r3"]
    assert ids(runs, error_type="TimeoutError", cursor=(T0 + 20, "r3")) == ["r2"]
    assert ids(runs, error_type="Nope") == []


def test_runs_are_counted_by_status(runs: Store) -> None:
    assert runs.count_runs() == {"cancelled": 1, "failed": 3, "running": 1}
    assert runs.count_runs(workflow="t") == {"cancelled": 1, "failed": 2, "running": 1}
    assert runs.count_runs(error_type="TimeoutError") == {"failed": 2}
    assert runs.count_runs(status="running") == {"running": 1}
    assert runs.count_runs(workflow="nope") == {}


#: values of every filter, each selecting some of ``runs`` (None: not given)
FILTERS: dict[str, list[Any]] = {
    "status": [None, "failed", "running"],
    "workflow": [None, "t"],
    "error_type": [None, "TimeoutError"],
    "node": [None, "a"],
    "created_after": [None, T0 + 10],
    "created_before": [None, T0 + 40],
    "late": [None, False],
    "ended_after": [None, T0 + 15],
    "ended_before": [None, T0 + 60],
}


def test_a_count_never_disagrees_with_the_listing(runs: Store) -> None:
    """Every combination of filters: the statuses of the runs listed (all of them) are
    exactly the counts, so a page's numbers and its rows agree."""
    choices = {**FILTERS, "version": [None, runs.get_run("r1").spec_version[:6]]}
    names = sorted(choices)
    checked = 0
    for values in itertools.product(*(choices[name] for name in names)):
        filters = {name: value for name, value in zip(names, values, strict=True)
                   if value is not None}  # fmt: skip
        listed = Counter(record.status for record in runs.list_runs(limit=100, **filters))
        assert runs.count_runs(**filters) == dict(listed), filters
        checked += bool(listed)
    assert checked > 50  # most combinations select some runs


def test_count_runs_takes_exactly_the_filters_of_list_runs() -> None:
    def parameters(method: Any) -> dict[str, inspect.Parameter]:
        return {name: p for name, p in inspect.signature(method).parameters.items()
                if name != "self"}  # fmt: skip

    listing = parameters(StoreProtocol.list_runs)
    del listing["cursor"], listing["limit"]
    assert parameters(StoreProtocol.count_runs) == listing
    assert parameters(SQLiteStore.count_runs) == listing
    assert parameters(SQLiteStore.list_runs) == parameters(StoreProtocol.list_runs)


class Recording:
    """A connection that keeps the queries run on it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.queries: list[tuple[str, Any]] = []

    def execute(self, query: str, params: Any = ()) -> sqlite3.Cursor:
        self.queries.append((query, params))
        return self.conn.execute(query, params)


@pytest.mark.parametrize(
    ("read", "index"),
    [
        (lambda s: s.list_runs(error_type="E"), "runs_failed_by_error (error_type=?)"),
        (lambda s: s.list_runs(error_type="E", status="failed"), "runs_failed_by_error"),
        (lambda s: s.list_runs(node="n"), "runs_failed_by_node (failed_node=?)"),
        (
            lambda s: s.list_runs(error_type="E", node="n"),
            "runs_failed (error_type=? AND failed_node=?)",
        ),
        (lambda s: s.count_runs(error_type="E"), "runs_failed_by_error"),
        (lambda s: s.count_runs(late=True), "runs_late"),
        (lambda s: s.count_runs(created_after=T0), "runs_by_created (created_at>?)"),
        (lambda s: s.runs_changed((T0, "r"), 10), "runs_by_update ((updated_at,id)>(?,?))"),
        (lambda s: s.runs_changed(None, 10), "runs_by_update"),
        (lambda s: s.list_runs(workflow="w", late=True), "runs_late_by_workflow (workflow=?)"),
        (lambda s: s.count_runs(workflow="w", late=True), "runs_late_by_workflow (workflow=?)"),
        (lambda s: s.count_runs(ended_after=T0), "runs_ended (ended_at>?)"),
        (lambda s: s.count_runs(status="failed", ended_after=T0), "runs_ended (ended_at>?)"),
        (
            lambda s: s.count_runs(workflow="w", status="failed", ended_after=T0),
            "runs_ended (ended_at>?)",
        ),
        (lambda s: s.count_runs(workflow="w", ended_before=T0), "runs_ended (ended_at<?)"),
        (lambda s: s.quiet_runs(T0, 10), "runs_by_status (status=?)"),
    ],
    ids=[
        "error",
        "error-failed",
        "node",
        "error-node",
        "count-error",
        "count-late",
        "count-after",
        "feed",
        "feed-start",
        "workflow-late",
        "count-workflow-late",
        "count-ended",
        "count-ended-failed",
        "count-ended-workflow-failed",
        "count-ended-before-workflow",
        "quiet",
    ],
)
def test_what_the_dashboard_reads_goes_through_its_index(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, read: Any, index: str
) -> None:
    """SQLite's planner (no statistics) picks these, not the index of runs by status
    for its order (which reads every failed run for a rare error type, and every run
    to count the late ones: 50 ms at 100,000 runs instead of 3)."""
    conn = sqlite_store.dialect.connection()
    recording = Recording(conn)
    monkeypatch.setattr(sqlite_store.dialect, "read", lambda: nullcontext(recording))
    read(sqlite_store)

    ((query, params),) = recording.queries
    plan = " ; ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params))
    assert f"USING INDEX {index}" in plan, plan


@pytest.mark.parametrize("kind", [None, "approval"])
def test_a_runs_waits_are_read_by_its_key(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, kind: str | None
) -> None:
    """Every row of a run not ended in the runs list reads its waits (``run_activity``):
    by the table's key, not through every open wait (9 ms a row at 8,000 open waits,
    ``python -m bench.dashboard``)."""
    conn = sqlite_store.dialect.connection()
    recording = Recording(conn)
    monkeypatch.setattr(sqlite_store.dialect, "read", lambda: nullcontext(recording))
    sqlite_store.waits(run_id="r", waits_for=kind)

    ((query, params),) = recording.queries
    plan = " ; ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params))
    assert "SEARCH w USING PRIMARY KEY (run_id=?)" in plan, plan


@pytest.mark.parametrize("count", [False, True], ids=["list", "count"])
def test_a_version_prefix_reads_the_index_of_runs_by_version(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, count: bool
) -> None:
    """The prefix is read first as the stored versions it begins, then their runs by
    the index of runs by version, newest first as it holds them: not every run of a
    range of versions sorted (520 ms at 100,000 runs)."""
    spec = make_spec()
    sqlite_store.save_spec(spec, T0)
    conn = sqlite_store.dialect.connection()
    recording = Recording(conn)
    monkeypatch.setattr(sqlite_store.dialect, "read", lambda: nullcontext(recording))
    if count:
        sqlite_store.count_runs(version=spec.version[:8])
    else:
        sqlite_store.list_runs(version=spec.version[:8])

    (lookup, _), (query, params) = recording.queries
    assert "FROM specs" in lookup
    plan = " ; ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params))
    assert "USING INDEX runs_by_version (spec_version=?)" in plan, plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan  # ties by id only: its right part


# --- the change feed ------------------------------------------------------------------------


def change(store: Store, run_id: str) -> RunChange:
    run = store.get_run(run_id)
    return RunChange(
        run.id, run.workflow, run.status, run.last_seq, run.updated_at, run.late, run.created_at
    )


def test_the_feed_starts_at_the_run_written_last(store: Store) -> None:
    assert store.runs_changed(None, 10) == []
    Driver(store, make_spec(), "r1").start()
    later = Driver(store, make_spec(), "r2")
    later.now = T0 + 1
    later.start()

    (newest,) = store.runs_changed(None, 10)

    assert newest == change(store, "r2")
    assert newest.position == (T0 + 1, "r2")
    assert store.runs_changed(newest.position, 10) == []


def test_the_feed_gives_each_run_written_after_the_position_once_as_it_is_now(
    store: Store,
) -> None:
    first = Driver(store, make_spec(), "r1")
    first.start()
    (start,) = store.runs_changed(None, 10)
    for run_id in ("r3", "r2"):  # written at the same time: in id order
        driver = Driver(store, make_spec(), run_id)
        driver.now = T0 + 1
        driver.start()
    (claimed,) = first.claim()  # T0 + 0.5: its NodeStarted moves r1
    first.succeed(claimed.lease, "A")  # T0 + 1.0: and again

    changed = store.runs_changed(start.position, 10)

    assert [(c.id, c.updated_at) for c in changed] == [
        ("r1", T0 + 1), ("r2", T0 + 1), ("r3", T0 + 1)]  # fmt: skip
    assert changed[0] == change(store, "r1")
    assert store.runs_changed(start.position, 2) == changed[:2]
    assert store.runs_changed(changed[1].position, 10) == changed[2:]  # strictly after


def test_a_status_change_moves_a_run_in_the_feed(store: Store) -> None:
    driver = Driver(store, make_spec(), "r1")
    driver.start()
    (before,) = store.runs_changed(None, 10)

    driver.cancel()

    (after,) = store.runs_changed(before.position, 10)
    assert (after.id, after.status, after.updated_at) == ("r1", "cancelled", driver.now)


def test_a_write_of_the_late_flag_alone_moves_a_run_in_the_feed(store: Store) -> None:
    Driver(store, make_spec(), "r1").start()
    (before,) = store.runs_changed(None, 10)
    head = store.get_run("r1")

    (result,) = store.commit([Transition("r1", head.last_seq, T0 + 5, events=[],
                                         writes=[SetLate(True)],
                                         expected_head=head.head_hash)])  # fmt: skip

    assert result.error is None
    (after,) = store.runs_changed(before.position, 10)
    assert (after.id, after.late, after.updated_at, after.last_seq) == (
        "r1", True, T0 + 5, head.last_seq)  # fmt: skip


# --- browser sessions -----------------------------------------------------------------------


def test_a_session_stands_for_its_token_until_it_expires_or_ends(store: Store) -> None:
    store.add_session("s1" * 32, "t1" * 32, T0, T0 + 60)
    store.add_session("s2" * 32, "t1" * 32, T0, T0 + 30)

    assert store.session_token_hash("s1" * 32, T0 + 59.9) == "t1" * 32
    assert store.session_token_hash("s1" * 32, T0 + 60) is None  # expired
    assert store.session_token_hash("xx" * 32, T0) is None  # unknown
    with pytest.raises(StoreError, match="exists already"):
        store.add_session("s1" * 32, "t2" * 32, T0, T0 + 60)
    assert store.session_token_hash("s1" * 32, T0) == "t1" * 32  # not replaced

    store.end_session("s1" * 32)
    store.end_session("s1" * 32)  # ending it again changes nothing
    assert store.session_token_hash("s1" * 32, T0) is None
    assert store.session_token_hash("s2" * 32, T0) == "t1" * 32


def test_expired_sessions_are_forgotten(store: Store) -> None:
    store.add_session("s1" * 32, "t" * 64, T0, T0 + 30)
    store.add_session("s2" * 32, "t" * 64, T0, T0 + 60)

    assert store.forget_sessions(T0 + 29) == 0
    assert store.forget_sessions(T0 + 30) == 1  # expired at its expires_at

    assert store.session_token_hash("s2" * 32, T0 + 31) == "t" * 64
    assert store.forget_sessions(T0 + 100) == 1


# --- the migration ----------------------------------------------------------------------------

_BEFORE = ["DROP INDEX runs_failed", "DROP INDEX runs_failed_by_error",
           "DROP INDEX runs_failed_by_node", "DROP INDEX runs_by_update",
           "DROP INDEX runs_late_by_workflow",
           "ALTER TABLE runs DROP COLUMN failed_node", "ALTER TABLE runs DROP COLUMN error_type",
           "DROP TABLE sessions"]  # fmt: skip


def reopened_before_dashboard(store: Store) -> Store:
    """The store's database as it was before migration 0015 (SQLite) / 0009
    (PostgreSQL), opened again: the migration applied to what it holds."""
    store.close()
    if isinstance(store, SQLiteStore):
        for statement in [*_BEFORE, "DELETE FROM schema_migrations WHERE version = 15"]:
            raw_sql(store.path, statement)
        return SQLiteStore(store.path)
    assert isinstance(store, PostgresStore)
    before = PostgresStore(store.url, upgrade=True)
    with before.dialect.write() as cur:
        for statement in [*_BEFORE, "DELETE FROM schema_migrations WHERE version = 9"]:
            cur.execute(statement)
    before.close()
    return PostgresStore(store.url, upgrade=True)


def test_runs_failed_before_the_migration_get_their_failure_from_their_history(
    store: Store,
) -> None:
    failed_run(store, "r1", "b", "TimeoutError")
    retried = failed_run(store, "r2", "a", "KeyError")
    retry_run(store, "r2", by="tester", clock=FakeClock(retried.tick()))
    fail_node(retried, "a", "ValueError")  # failed again: its last failure counts
    Driver(store, make_spec(), "r4").start()

    migrated = reopened_before_dashboard(store)
    try:
        assert migrated.migrations_applied()[-1].endswith("_dashboard")
        found = {r.id: (r.status, r.failed_node, r.error_type) for r in migrated.list_runs()}
        assert found["r1"] == ("failed", "b", "TimeoutError")
        assert found["r2"] == ("failed", "a", "ValueError")
        assert found["r4"] == ("running", None, None)
        assert [r.id for r in migrated.list_runs(error_type="ValueError", node="a")] == ["r2"]
        migrated.add_session("s" * 64, "t" * 64, T0, T0 + 1)  # the table is back
    finally:
        migrated.close()

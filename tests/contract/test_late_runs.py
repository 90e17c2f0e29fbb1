"""A workflow's ``expected_duration``: a run still going past it is marked late, by a
durable timer any worker fires, on every backend. The ``RunLate`` event and the runs
table's ``late`` flag commit together; the run goes on (only the deadline stops it); a
run that ends in time is never late; a retry by hand gives the run its time again.

The clock is a ``FakeClock``: nothing here waits for real time to pass."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from keel.engine.events import RunLate, RunRetried
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import send_signal
from keel.runtime.operations.manual import retry_run
from keel.runtime.runs import RunCache
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.runtime.worker.transitions import timer_fired
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store import Store
from keel.store.records import Timer
from keel.store.sqlite import SQLiteStore
from keel.store.writes import ClearTimer
from tests.contract.conftest import T0
from tests.unit import runtime_tasks  # noqa: F401  (loaded, as a worker loads its code)

TASKS = "tests.unit.runtime_tasks"
EXPECTED, DEADLINE = 600, 3600


def waiting_spec(then: str = "echo") -> WorkflowSpec:
    """A step, then a signal nobody sends until the test does, then ``then``."""
    return parse_spec({
        "name": "slow",
        "nodes": [
            {"id": "a", "task": f"{TASKS}:echo", "args": {"value": 1}},
            {"id": "go", "kind": "signal", "signal": "go", "after": ["a"]},
            {"id": "b", "task": f"{TASKS}:{then}", "args": {"message": "no"} if then ==
             "fail_for_good" else {"value": 2}, "after": ["go"]},
        ],
        "expected_duration": "10m",
        "deadline": "1h",
    })  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def worker(store: Store, clock: FakeClock) -> Iterator[Worker]:
    opened = Worker(store, WorkerOptions(poll=0.01), clock=clock)
    yield opened
    opened.close()


def settle(worker: Worker, run_id: str) -> None:
    """Run what is ready until nothing runs and nothing more is ready."""
    while worker.step(wait=True, run_ids=[run_id]) or worker._running:
        pass


def late_events(store: Store, run_id: str) -> list[RunLate]:
    return [s.event for s in store.history(run_id) if isinstance(s.event, RunLate)]


def test_a_run_past_its_expected_duration_is_late_in_its_history_and_its_row(
    store: Store, clock: FakeClock, worker: Worker
) -> None:
    record = start_run(store, waiting_spec(), {}, clock=clock)
    due = sorted((t.key, t.due_at) for t in store.due_timers(T0 + DEADLINE, 10))
    assert due == [("deadline", T0 + DEADLINE), ("late", T0 + EXPECTED)]
    settle(worker, record.id)

    clock.advance(EXPECTED - 1)
    assert worker.fire_timers() == 0
    assert not store.get_run(record.id).late
    clock.advance(2)
    assert worker.fire_timers() == 1

    assert late_events(store, record.id) == [RunLate(expected=EXPECTED)]
    late = store.get_run(record.id)
    assert (late.status, late.late) == ("running", True)  # it goes on
    assert [r.id for r in store.list_runs(late=True)] == [record.id]
    assert store.list_runs(late=False) == []
    # the deadline is still armed; the late timer is gone
    assert [t.key for t in store.due_timers(T0 + DEADLINE, 10)] == ["deadline"]

    send_signal(store, record.id, "go", by="tester", clock=clock)
    (done,) = worker.run_until_finished([record.id])
    assert (done.status, done.late) == ("succeeded", True)  # it finished late
    assert len(late_events(store, record.id)) == 1


def test_a_run_that_ends_in_time_is_never_late(
    store: Store, clock: FakeClock, worker: Worker
) -> None:
    record = start_run(store, waiting_spec(), {}, clock=clock)
    settle(worker, record.id)
    clock.advance(EXPECTED - 1)
    send_signal(store, record.id, "go", by="tester", clock=clock)
    (done,) = worker.run_until_finished([record.id])

    assert (done.status, done.late) == ("succeeded", False)
    assert store.due_timers(T0 + 10 * DEADLINE, 10) == []  # its timers went with it
    clock.advance(DEADLINE)
    assert worker.fire_timers() == 0
    assert late_events(store, record.id) == []
    assert store.list_runs(late=True) == []
    assert [r.id for r in store.list_runs(late=False)] == [record.id]


def test_a_late_timer_that_comes_after_the_run_ended_fires_nothing(
    store: Store, clock: FakeClock, worker: Worker
) -> None:
    """The run ends in time, and a worker holding the late timer (taken as due before
    the end committed) hands it to the run: nothing is recorded, the timer is cleared."""
    record = start_run(store, waiting_spec(), {}, clock=clock)
    settle(worker, record.id)
    send_signal(store, record.id, "go", by="tester", clock=clock)
    (done,) = worker.run_until_finished([record.id])
    clock.advance(EXPECTED + 1)
    cache = RunCache(store)

    fired = timer_fired(cache.state(record.id), Timer(record.id, "late", T0 + EXPECTED),
                        clock.now(), cache)  # fmt: skip

    assert (list(fired.events), list(fired.writes)) == ([], [ClearTimer("late")])
    (committed,) = store.commit([fired])
    assert committed.error is None
    after = store.get_run(record.id)
    assert (after.last_seq, after.status, after.late) == (done.last_seq, "succeeded", False)


def test_a_retry_by_hand_gives_a_late_run_its_time_again(
    store: Store, clock: FakeClock, worker: Worker
) -> None:
    record = start_run(store, waiting_spec(then="fail_for_good"), {}, clock=clock)
    settle(worker, record.id)
    clock.advance(EXPECTED + 1)
    worker.fire_timers()
    send_signal(store, record.id, "go", by="tester", clock=clock)
    (failed,) = worker.run_until_finished([record.id])
    assert (failed.status, failed.late) == ("failed", True)

    retried = retry_run(store, record.id, by="tester", clock=clock)

    (retry,) = store.history(record.id, failed.last_seq)[:1]
    assert isinstance(retry.event, RunRetried)
    assert not retried.late
    assert not store.get_run(record.id).late
    assert store.list_runs(late=True) == []
    due = sorted((t.key, t.due_at) for t in store.due_timers(clock.now() + DEADLINE, 10))
    assert due == [("deadline", clock.now() + DEADLINE), ("late", clock.now() + EXPECTED)]


def test_a_database_from_before_late_runs_gets_the_flag_false_for_its_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keel.db"
    store = SQLiteStore(path)
    record = start_run(store, waiting_spec(), {}, clock=FakeClock(T0))
    store.close()
    with closing(sqlite3.connect(path)) as conn, conn:  # the schema before 0012_late
        conn.execute("DROP INDEX runs_late")
        conn.execute("DROP INDEX runs_late_by_workflow")  # (0015's, on the column)
        conn.execute("ALTER TABLE runs DROP COLUMN late")
        conn.execute("DELETE FROM schema_migrations WHERE version = 12")

    store = SQLiteStore(path)
    try:
        assert store.migrations_applied() == ["0012_late"]
        assert not store.get_run(record.id).late
        assert store.list_runs(late=True) == []
        assert [r.id for r in store.list_runs(late=False)] == [record.id]
    finally:
        store.close()


def test_late_runs_are_counted_by_the_worker_and_the_store(store: Store, clock: FakeClock) -> None:
    """``keel_runs_late_total`` counts the runs a worker marked late; the store's gauge
    ``late_runs`` holds those not ended, per workflow (what an alert on late runs reads)."""
    from keel.runtime.metrics import Metrics

    metrics = Metrics()
    counting = Worker(store, WorkerOptions(poll=0.01), clock=clock, metrics=metrics)
    record = start_run(store, waiting_spec(), {}, clock=clock)
    settle(counting, record.id)
    assert store.gauges(clock.now(), clock.now()).late_runs == {}

    clock.advance(EXPECTED + 1)
    assert counting.fire_timers() == 1

    assert metrics.registry.get_sample_value("keel_runs_late_total", {"workflow": "slow"}) == 1
    assert store.gauges(clock.now(), clock.now()).late_runs == {"slow": 1}
    send_signal(store, record.id, "go", by="tester", clock=clock)
    counting.run_until_finished([record.id])
    assert store.gauges(clock.now(), clock.now()).late_runs == {}  # ended: no longer counted
    counting.close()

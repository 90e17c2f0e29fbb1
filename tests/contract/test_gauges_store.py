"""``Store.gauges`` (both backends): what the store holds now, as metrics count it. Ready
attempts per queue are those due and free (not leased, not held by a pause); the oldest
one's ready time is its ``available_at``; runs waiting are counted once per kind however
many of their nodes wait; notifications are pending until delivered or given up; workers
are live when seen since the moment asked for. And a claim says each attempt's queue and
ready time, from which a worker measures queue lag."""

from __future__ import annotations

from keel.engine import NodeSucceeded
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import pause_run
from keel.runtime.worker.transitions import leasing
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store import Store, WorkerRecord
from keel.store.gauges import QueueGauge, StoreGauges
from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import T0, Driver, make_spec

WAITING = {
    "name": "waiting",
    "notify": [{"kind": "callable", "function": "tests.unit.notify_targets:record",
                "on": ["approval_requested"]}],
    "nodes": [
        {"id": "check", "kind": "approval", "title": "Check"},
        {"id": "also", "kind": "approval", "title": "Check again"},
        {"id": "ping", "kind": "signal", "signal": "ping"},
        {"id": "nap", "kind": "timer", "duration": "1h"},
    ],
}  # fmt: skip


def two_queues() -> WorkflowSpec:
    """``a`` on the default queue and ``b`` on ``io``, both ready at the start."""
    return parse_spec({"name": "queues", "nodes": [
        {"id": "a", "task": "m:f"}, {"id": "b", "task": "m:f", "queue": "io"}]})  # fmt: skip


def start(store: Store, spec: WorkflowSpec, at: float) -> str:
    return start_run(store, spec, {}, clock=FakeClock(at)).id


def test_an_empty_store_holds_nothing(store: Store) -> None:
    assert store.gauges(T0, T0 - 30) == StoreGauges()


def test_ready_attempts_are_counted_per_queue_with_the_oldest_ready_time(store: Store) -> None:
    first = start(store, two_queues(), T0)
    start(store, two_queues(), T0 + 10)
    start(store, two_queues(), T0 + 100)  # not due yet at T0 + 50

    gauges = store.gauges(T0 + 50, T0)

    assert gauges.queues == {"default": QueueGauge(2, T0), "io": QueueGauge(2, T0)}
    pause_run(store, first, by="tester", clock=FakeClock(T0 + 51))  # held: not ready
    store.claim("w1", 1, T0 + 52, 30.0, queues=["io"])  # leased: not waiting any more
    # the second run's ``a`` is left; the third run's are not due yet
    assert store.gauges(T0 + 60, T0).queues == {"default": QueueGauge(1, T0 + 10)}


def test_waiting_runs_are_counted_once_per_kind_with_their_notifications(store: Store) -> None:
    spec = parse_spec(WAITING)
    start(store, spec, T0)
    start(store, spec, T0 + 1)

    gauges = store.gauges(T0 + 2, T0)

    # two approvals wait in each run: each run counts once
    assert gauges.waiting_runs == {"approval": 2, "signal": 2, "timer": 2}
    assert gauges.notifications_pending == 4  # approval_requested, per approval and run
    assert gauges.queues == {}


def test_a_delivered_notification_is_no_longer_pending(store: Store) -> None:
    start(store, parse_spec(WAITING), T0)
    taken = store.take_notifications("w1", T0 + 1, 10, 30.0)
    store.finish_notification(taken[0].id, T0 + 2)
    store.finish_notification(taken[1].id, T0 + 2, error="refused", retry_at=T0 + 60)

    assert store.gauges(T0 + 3, T0).notifications_pending == 1  # the one tried again


def test_live_workers_are_those_seen_since_the_moment_asked_for(store: Store) -> None:
    for owner, seen in (("h1:1:1:a", T0), ("h1:2:1:b", T0 + 20), ("h2:3:1:c", T0 - 100)):
        store.register_worker(WorkerRecord(owner, owner[:2], 1, None, seen, seen))

    assert store.gauges(T0 + 30, T0).live_workers == 2
    assert store.gauges(T0 + 30, T0 + 1).live_workers == 1


def test_a_claim_says_each_attempts_queue_and_when_it_was_ready(store: Store) -> None:
    start(store, two_queues(), T0)

    claimed = sorted(store.claim("w1", 10, T0 + 5, 30.0), key=lambda c: c.lease.node)

    assert [(c.lease.node, c.queue, c.ready_at, c.started.at) for c in claimed] == [
        ("a", "default", T0, T0 + 5), ("b", "io", T0, T0 + 5)]  # fmt: skip


def test_an_attempt_leased_on_commit_was_ready_when_it_started(store: Store) -> None:
    driver = Driver(store, make_spec())
    driver.start()
    (a,) = driver.claim()
    step = driver.step([NodeSucceeded(node="a", attempt=1, output=1)], (a.lease,))
    transition = leasing(step, 1, eager=False, owner="w1", lease_for=30.0, queues=None)
    (committed,) = store.commit([transition])

    (b,) = committed.claimed
    assert (b.lease.node, b.queue, b.ready_at) == ("b", "default", b.started.at)


def test_the_late_runs_are_counted_through_their_own_index(sqlite_store: SQLiteStore) -> None:
    """The late runs are few, in a partial index of their own; SQLite's planner would
    take the index of runs by status and read every unfinished run at each scrape."""
    conn = sqlite_store.dialect.connection()
    query = sqlite_store.dialect.queries["store_gauges"]
    plan = conn.execute(f"EXPLAIN QUERY PLAN {query}", {"now": T0, "live_since": T0}).fetchall()
    (late,) = [str(row[3]) for row in plan if " runs " in str(row[3])]
    assert "USING INDEX runs_late" in late, late

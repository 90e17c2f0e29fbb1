"""A run's deadline is a timer in the store: any worker fires it when it is due, after
restarts too, and the run fails (or starts its failure path)."""

from __future__ import annotations

from keel.engine.events import RunDeadlineExceeded, RunFailed, RunFailing
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.manual import retry_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import parse_spec
from keel.store.sqlite import SQLiteStore
from tests.unit import runtime_tasks  # noqa: F401  (loaded, as a worker loads its code: see task_access)

TASKS = "tests.unit.runtime_tasks"


def spec(**fields: object) -> object:
    return parse_spec(
        {"name": "w", "nodes": [{"id": "a", "task": f"{TASKS}:echo", "args": {"value": 1}}],
         "deadline": 60, **fields}
    )  # fmt: skip


def test_the_deadline_fires_only_when_due_from_the_store(store: SQLiteStore) -> None:
    clock = FakeClock()
    record = start_run(store, spec(), {}, clock=clock)  # type: ignore[arg-type]
    (timer,) = store.due_timers(clock.now() + 60, 10)
    assert (timer.run_id, timer.key, timer.due_at) == (record.id, "deadline", clock.now() + 60)

    # nothing has run it yet; a worker started later (as after a restart) finds the timer
    worker = Worker(store, WorkerOptions(poll=0.01), clock=clock)
    clock.advance(59)
    assert worker.fire_timers() == 0
    assert store.get_run(record.id).status == "running"
    clock.advance(2)
    assert worker.fire_timers() == 1
    worker.close()

    done = store.get_run(record.id)
    assert done.status == "failed"
    assert "deadline (60 s)" in (done.reason or "")
    kinds = [type(s.event) for s in store.history(record.id)][-2:]
    assert kinds == [RunDeadlineExceeded, RunFailed]
    assert store.due_timers(clock.now() + 3600, 10) == []
    assert store.ready_count(record.id) == 0


def test_a_finished_run_leaves_no_deadline_behind(store: SQLiteStore) -> None:
    clock = FakeClock()
    record = start_run(store, spec(), {}, clock=clock)  # type: ignore[arg-type]
    worker = Worker(store, WorkerOptions(poll=0.01), clock=clock)
    (done,) = worker.run_until_finished([record.id])
    worker.close()

    assert done.status == "succeeded"
    assert store.due_timers(clock.now() + 3600, 10) == []


def test_a_deadline_starts_the_failure_path_when_there_is_one(store: SQLiteStore) -> None:
    clock = FakeClock()
    failing = spec(on_failure=f"{TASKS}:echo")
    record = start_run(store, failing, {}, clock=clock)  # type: ignore[arg-type]
    worker = Worker(store, WorkerOptions(poll=0.01), clock=clock)
    clock.advance(61)
    worker.fire_timers()
    (done,) = worker.run_until_finished([record.id])
    worker.close()

    assert done.status == "failed"
    events = [s.event for s in store.history(record.id)]
    assert any(isinstance(e, RunFailing) for e in events)
    assert [getattr(e, "node", None) for e in events if type(e).__name__ == "NodeSucceeded"] == [
        "run:on_failure"
    ]


def test_a_retry_by_hand_arms_the_deadline_again(store: SQLiteStore) -> None:
    """The retry sets the failed run's status back after its timers: the deadline it
    gives the run again must still be written (not refused as a timer of an ended run)."""
    clock = FakeClock()
    failing = parse_spec(
        {"name": "w", "deadline": 60,
         "nodes": [{"id": "a", "task": f"{TASKS}:fail_for_good", "args": {"message": "no"}}]}
    )  # fmt: skip
    record = start_run(store, failing, {}, clock=clock)
    worker = Worker(store, WorkerOptions(poll=0.01), clock=clock)
    (failed,) = worker.run_until_finished([record.id])
    assert failed.status == "failed"
    assert store.due_timers(clock.now() + 3600, 10) == []
    clock.advance(30)

    retry_run(store, record.id, by="tester", clock=clock)

    (timer,) = store.due_timers(clock.now() + 3600, 10)
    assert (timer.key, timer.due_at) == ("deadline", clock.now() + 60)
    clock.advance(61)
    worker.fire_timers()
    (done,) = worker.run_until_finished([record.id])
    worker.close()
    assert "deadline (60 s)" in (done.reason or "")

"""Completion triggers: a run ending starts the runs that follow it, recorded with the
run's end (so a crash before the pump fires it loses none), once however often the
end is delivered; a run nobody listens to writes nothing more."""

from __future__ import annotations

import time
from typing import Any

from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.triggers.completion import fire_completion
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store.records import RunRecord
from keel.store.sqlite import SQLiteStore
from tests.unit import runtime_tasks  # noqa: F401  (loaded, as a worker loads its code)
from tests.unit.outbox_rows import outbox

TASKS = "tests.unit.runtime_tasks"


def upstream(name: str = "up", fail: bool = False) -> WorkflowSpec:
    fails = {"id": "a", "task": f"{TASKS}:fail_for_good", "args": {"message": "no"}}
    node = fails if fail else {"id": "a", "task": f"{TASKS}:echo", "args": {"value": {"total": 12}}}
    return parse_spec({"name": name, "nodes": [node], "outputs": {"total": "nodes.a.output.total"}})


def downstream(name: str, **trigger: Any) -> WorkflowSpec:
    return parse_spec({"name": name, "nodes": [{"id": "a", "task": f"{TASKS}:echo"}],
                       "triggers": [{"kind": "completion", "after": "up", **trigger}]})  # fmt: skip


def options(**fields: Any) -> WorkerOptions:
    return WorkerOptions(**{"poll": 0.01, "late_grace": 5, **fields})


def started_by_completion(store: SQLiteStore) -> list[RunRecord]:
    return [r for r in store.list_runs() if (r.started_by or "").startswith("completion:")]


def test_a_run_ending_starts_each_listening_workflow_once(store: SQLiteStore) -> None:
    store.deploy([(upstream(), None),
                  (downstream("plain"), None),
                  (downstream("mapped", input={"total": "run.output.total",
                                               "from": "run.id"}), None),
                  (downstream("on_failure", status=["failed"]), None),
                  (downstream("filtered", filter="run.output.total > 100"), None)],
                 1.0)  # fmt: skip
    record = start_run(store, upstream(), {})
    worker = Worker(store, options())
    (done,) = worker.run_until_finished([record.id])
    worker.flush_notifications(5)

    assert done.status == "succeeded"
    runs = {r.workflow: r for r in started_by_completion(store)}
    assert sorted(runs) == ["mapped", "plain"]
    assert runs["plain"].input == {"total": 12}  # no mapping: the ended run's output
    assert runs["mapped"].input == {"total": 12, "from": record.id}
    assert runs["plain"].started_by == "completion:up"
    first = store.history(runs["plain"].id)[0].event
    assert first.trigger == {"kind": "completion", "source": "up", "key": record.id}  # type: ignore[attr-defined]

    (item,) = outbox(store, record.id)
    assert item.delivered_at is not None
    assert fire_completion(store, item) is None  # delivered again (after a crash)
    assert len(started_by_completion(store)) == 2  # starts nothing twice
    worker.close()


def test_a_failed_run_starts_what_listens_for_failures(store: SQLiteStore) -> None:
    store.deploy([(upstream(fail=True), None), (downstream("plain"), None),
                  (downstream("on_failure", status=["failed"], input={"id": "run.id"}),
                   None)], 1.0)  # fmt: skip
    record = start_run(store, upstream(fail=True), {})
    worker = Worker(store, options())
    (done,) = worker.run_until_finished([record.id])
    worker.flush_notifications(5)
    worker.close()

    assert done.status == "failed"
    assert [(r.workflow, r.input) for r in started_by_completion(store)] == [
        ("on_failure", {"id": record.id})]  # fmt: skip


def test_a_run_end_outlives_a_crash_before_it_is_fired(store: SQLiteStore) -> None:
    clock = FakeClock()
    store.deploy([(upstream(), None), (downstream("plain"), None)], 1.0)
    record = start_run(store, upstream(), {}, clock=clock)
    # this worker commits the end but never gets to fire it (as if killed after it)
    crashed = Worker(store, options(late_grace=0), clock=clock)
    crashed.outbox.take = lambda now: None  # type: ignore[method-assign]
    crashed.run_until_finished([record.id])

    (item,) = outbox(store, record.id)
    assert (item.notifier, item.payload["status"]) == ({"kind": "completion"}, "succeeded")
    assert started_by_completion(store) == []

    later = Worker(store, options(), clock=clock)
    later.step()
    later.flush_notifications(5)
    later.close()

    assert [r.workflow for r in started_by_completion(store)] == ["plain"]


def test_a_run_nobody_listens_to_writes_nothing_more(store: SQLiteStore) -> None:
    store.deploy([(upstream(), None), (downstream("elsewhere").model_copy(update={
        "triggers": ()}), None)], 1.0)  # fmt: skip
    record = start_run(store, upstream(), {})
    worker = Worker(store, options())
    worker.run_until_finished([record.id])
    worker.close()

    assert outbox(store, record.id) == []


def test_a_cancelled_run_starts_what_listens_for_cancellations(store: SQLiteStore) -> None:
    from keel.runtime.operations.control import cancel_run

    store.deploy([(upstream(), None), (downstream("plain"), None),
                  (downstream("on_cancel", status=["cancelled", "failed"]), None)],
                 1.0)  # fmt: skip
    record = start_run(store, upstream(), {})
    cancel_run(store, record.id, by="ops")  # by hand: no worker ran it
    (item,) = outbox(store, record.id)
    assert item.payload["status"] == "cancelled"
    worker = Worker(store, options())
    worker.step()
    worker.flush_notifications(5)
    worker.close()

    assert [(r.workflow, r.input) for r in started_by_completion(store)] == [("on_cancel", {})]


def test_followers_start_at_once(
    store: SQLiteStore,
) -> None:
    """The worker that records a followed run's end delivers it at once: no wake-up
    comes to a process from its own commits, so waiting for the next look at the outbox
    (``fallback_poll``) held each follower seconds. The run clock never moves here, so
    no look is ever due: only the commit's own poke delivers the end."""
    clock = FakeClock()
    store.deploy([(upstream(), None), (downstream("plain"), None)], clock.now())
    record = start_run(store, upstream(), {}, clock=clock)
    worker = Worker(store, options(), clock=clock)
    assert worker.listening  # else the worker polls, and a look comes each poll anyway
    worker.step()  # its first look at the outbox: the next is due a fallback_poll later
    followers: list[RunRecord] = []
    for _ in range(2000):  # not run_until_finished: its drain delivers what is left
        worker.step()  # the delivery runs on a thread of its own: a few turns
        followers = started_by_completion(store)
        if followers:
            break
        time.sleep(0.005)
    assert store.get_run(record.id).status == "succeeded"
    assert [f.workflow for f in followers] == ["plain"]
    assert clock.now() == 1_700_000_000.0
    worker.close()

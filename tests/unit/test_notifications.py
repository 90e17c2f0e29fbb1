"""Notifications through the outbox: written with the events that call for them, so a
crash before delivery loses nothing; delivered by workers, retried, then given up."""

from __future__ import annotations

from typing import Any

import pytest

from keel.runtime.clock import FakeClock
from keel.runtime.notifications.outbox import MAX_DELIVERIES
from keel.runtime.operations.control import start_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store.sqlite import SQLiteStore
from tests.unit import notify_targets, runtime_tasks  # noqa: F401  (loaded, as a worker loads its code)
from tests.unit.outbox_rows import outbox

TASKS = "tests.unit.runtime_tasks"
RECORD = {"kind": "callable", "function": "tests.unit.notify_targets:record",
          "on": ["run_failed", "node_failed", "retry_exhausted"]}  # fmt: skip


@pytest.fixture(autouse=True)
def received() -> list[dict[str, Any]]:
    notify_targets.received.clear()
    return notify_targets.received


def failing_spec(*notifiers: dict[str, Any], attempts: int = 2) -> WorkflowSpec:
    return parse_spec(
        {
            "name": "w",
            "nodes": [{"id": "a", "task": f"{TASKS}:fail_value", "args": {"message": "no"},
                       "retry": {"max_attempts": attempts, "initial_backoff": 0}}],
            "notify": list(notifiers),
        }
    )  # fmt: skip


def options(**fields: Any) -> WorkerOptions:
    return WorkerOptions(**{"poll": 0.01, "late_grace": 5, **fields})


def test_a_failed_run_notifies_each_event_once(
    store: SQLiteStore, received: list[dict[str, Any]]
) -> None:
    record = start_run(store, failing_spec(RECORD), {})
    worker = Worker(store, options())
    (done,) = worker.run_until_finished([record.id])
    worker.close()

    assert done.status == "failed"
    assert sorted(n["event"] for n in received) == ["node_failed", "retry_exhausted", "run_failed"]
    failed = next(n for n in received if n["event"] == "node_failed")
    assert (failed["run_id"], failed["node"], failed["attempt"]) == (record.id, "a", 2)
    assert failed["error"]["type"] == "ValueError"
    assert all(item.delivered_at is not None for item in outbox(store, record.id))


def test_only_the_events_a_notifier_asks_for_are_sent(
    store: SQLiteStore, received: list[dict[str, Any]]
) -> None:
    record = start_run(store, failing_spec({**RECORD, "on": ["run_failed"]}, attempts=1), {})
    worker = Worker(store, options())
    worker.run_until_finished([record.id])
    worker.close()

    assert [n["event"] for n in received] == ["run_failed"]


def test_a_notification_outlives_a_crash_before_delivery(
    store: SQLiteStore, received: list[dict[str, Any]]
) -> None:
    clock = FakeClock()
    record = start_run(store, failing_spec(RECORD, attempts=1), {}, clock=clock)
    # this worker commits the failure but never gets to deliver (as if killed after it)
    crashed = Worker(store, options(late_grace=0), clock=clock)
    crashed.outbox.take = lambda now: None  # type: ignore[method-assign]
    crashed.run_until_finished([record.id])

    waiting = outbox(store, record.id)
    assert [item.payload["event"] for item in waiting] == ["node_failed", "run_failed"]
    assert received == []
    assert all(item.delivered_at is None for item in waiting)

    later = Worker(store, options(), clock=clock)
    later.step()
    later.flush_notifications(5)

    assert sorted(n["event"] for n in received) == ["node_failed", "run_failed"]


def test_a_failing_delivery_is_tried_again_later_then_given_up(store: SQLiteStore) -> None:
    clock = FakeClock()
    explode = {**RECORD, "function": "tests.unit.notify_targets:explode", "on": ["run_failed"]}
    record = start_run(store, failing_spec(explode, attempts=1), {}, clock=clock)
    worker = Worker(store, options(notify_every=0), clock=clock)
    worker.run_until_finished([record.id])

    (item,) = outbox(store, record.id)
    assert item.deliveries == 1
    assert "pager is down" in (item.error or "")
    worker.step()  # not due yet: its next delivery waits
    assert outbox(store, record.id)[0].deliveries == 1
    for _ in range(MAX_DELIVERIES):
        clock.advance(3600)
        worker.step()
        worker.flush_notifications(5)
    (item,) = outbox(store, record.id)
    assert item.deliveries == MAX_DELIVERIES
    assert item.delivered_at is None
    assert "pager is down" in (item.error or "")
    worker.close()

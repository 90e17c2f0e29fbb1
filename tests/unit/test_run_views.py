"""What the commands that read runs back derive from a real SQLite store: per-attempt
durations and "not started" in the run report, what a run is doing (``run_activity``),
and whether the runs table agrees with the history (``summary_mismatches``).

Times come from a fake clock, so durations are exact without sleeping.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from keel.engine.plan import compile_plan
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.manual import retry_run, set_node_output
from keel.runtime.runs import RunCache
from keel.runtime.views.activity import run_activity
from keel.runtime.views.audit import summary_mismatches
from keel.runtime.views.report import RunReport, run_report
from keel.runtime.worker.loop import Worker
from keel.spec import WorkflowSpec, parse_spec
from keel.store.sqlite import SQLiteStore
from tests.unit import runtime_tasks

#: the worker runs only keel tasks of modules loaded in its process: these
TASKS = runtime_tasks.__name__


def spec_of(nodes: list[dict[str, Any]]) -> WorkflowSpec:
    for node in nodes:
        if "task" in node:
            node["task"] = f"{TASKS}:{node['task']}"
    return parse_spec({"name": "w", "nodes": nodes})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def workers(store: SQLiteStore, clock: FakeClock) -> Iterator[list[Worker]]:
    made: list[Worker] = []
    yield made
    for worker in made:
        worker.executor.shutdown(wait=True)


@pytest.fixture
def worker(store: SQLiteStore, clock: FakeClock, workers: list[Worker]) -> Worker:
    workers.append(Worker(store, clock=clock))
    return workers[-1]


def finish(store: SQLiteStore, clock: FakeClock, workers: list[Worker], run_id: str) -> str:
    """Run it to its end with a new worker (as ``keel resume`` after ``keel retry``)."""
    workers.append(Worker(store, clock=clock))
    (done,) = workers[-1].run_until_finished([run_id])
    return done.status


def report_of(store: SQLiteStore, spec: WorkflowSpec, run_id: str) -> RunReport:
    return run_report(compile_plan(spec), store.history(run_id))


#: ``a`` fails its first attempt (no retries), ``b`` needs it
FAILS_ONCE = [{"id": "a", "task": "flaky"}, {"id": "b", "task": "echo", "after": ["a"]}]


# --- 17. durations per attempt ---------------------------------------------------------------


def test_a_node_retried_by_hand_reports_its_last_attempt_not_the_time_since_the_first(
    store: SQLiteStore, clock: FakeClock, worker: Worker, workers: list[Worker]
) -> None:
    spec = spec_of([dict(n) for n in FAILS_ONCE])
    record = start_run(store, spec, {}, clock=clock)
    (failed,) = worker.run_until_finished([record.id])
    assert failed.status == "failed"
    clock.advance(3600)  # someone looks into it for an hour, then retries
    retry_run(store, record.id, by="ann", clock=clock)
    clock.advance(1)
    assert finish(store, clock, workers, record.id) == "succeeded"

    report = report_of(store, spec, record.id)
    a = report.nodes["a"]
    assert a.attempts == 2
    assert a.started_at == 1_700_000_000.0  # the first attempt's start is kept
    assert a.duration == 0.0  # its last attempt took no (fake) time: not 3601 s
    assert report.retries == 1
    assert report.duration == 1.0  # since the retry, not since the run began
    assert report.started_at == 1_700_000_000.0


def test_a_retry_backoff_is_not_in_the_duration(
    store: SQLiteStore, clock: FakeClock, worker: Worker
) -> None:
    retry = {"max_attempts": 2, "initial_backoff": "1m", "jitter": 0}
    spec = spec_of([{"id": "a", "task": "flaky", "retry": retry}])
    record = start_run(store, spec, {}, clock=clock)
    for _ in range(1000):
        worker.step(wait=True)
        if report_of(store, spec, record.id).nodes["a"].error is not None:
            break
    clock.advance(60)
    (done,) = worker.run_until_finished([record.id])
    assert done.status == "succeeded"

    a = report_of(store, spec, record.id).nodes["a"]
    assert (a.attempts, a.duration) == (2, 0.0)


def test_a_node_set_by_hand_took_no_time(
    store: SQLiteStore, clock: FakeClock, worker: Worker, workers: list[Worker]
) -> None:
    spec = spec_of([dict(n) for n in FAILS_ONCE])
    record = start_run(store, spec, {}, clock=clock)
    worker.run_until_finished([record.id])
    clock.advance(3600)
    set_node_output(store, record.id, "a", "by hand", by="ann", clock=clock)
    assert finish(store, clock, workers, record.id) == "succeeded"

    a = report_of(store, spec, record.id).nodes["a"]
    assert (a.status, a.output, a.duration) == ("succeeded", "by hand", None)


def test_the_nodes_of_a_failed_run_that_never_started_are_not_started(
    store: SQLiteStore, clock: FakeClock, worker: Worker
) -> None:
    spec = spec_of([dict(n) for n in FAILS_ONCE])
    record = start_run(store, spec, {}, clock=clock)
    before = report_of(store, spec, record.id)
    assert before.nodes["b"].status == "waiting"  # the run goes on: b waits for a
    worker.run_until_finished([record.id])

    b = report_of(store, spec, record.id).nodes["b"]
    assert (b.status, b.attempts, b.duration) == ("not_started", 0, None)


# --- 16. what a run is doing -----------------------------------------------------------------


def test_a_run_with_nothing_running_queued_or_waiting_is_stalled(
    store: SQLiteStore, clock: FakeClock, tmp_path: Path
) -> None:
    """(Queued, running and waiting runs: ``tests/contract/test_run_activity.py``.)"""
    spec = parse_spec({"name": "w", "nodes": [{"id": "ok", "kind": "approval", "title": "OK?"}]})
    record = start_run(store, spec, {}, clock=clock)
    with closing(sqlite3.connect(tmp_path / "keel.db")) as conn, conn:
        conn.execute("DELETE FROM waits")  # what a lost transition would leave
    stalled = run_activity(store, record, clock.now())
    assert stalled is not None
    assert stalled.kind == "stalled"


def test_an_ended_or_paused_run_has_no_activity(
    store: SQLiteStore, clock: FakeClock, worker: Worker
) -> None:
    record = start_run(store, spec_of([{"id": "a", "task": "echo"}]), {}, clock=clock)
    (done,) = worker.run_until_finished([record.id])
    assert run_activity(store, done, clock.now()) is None
    assert run_activity(store, dataclasses.replace(done, status="paused"), clock.now()) is None


# --- 10. the runs table against the history ---------------------------------------------------


def test_the_runs_table_is_checked_against_the_history(
    store: SQLiteStore, clock: FakeClock, worker: Worker
) -> None:
    spec = spec_of([{"id": "a", "task": "echo", "args": {"value": 3}}])
    record = start_run(store, spec, {}, clock=clock)
    (done,) = worker.run_until_finished([record.id])
    state = RunCache(store).state(record.id)
    assert summary_mismatches(done, state) == []

    forged = dataclasses.replace(done, output={"a": 4}, status="failed", reason="made up")
    assert summary_mismatches(forged, state) == [
        'the runs table says status "failed", the history says "succeeded"',
        'the runs table says output {"a": 4}, the history says {}',
        'the runs table says reason "made up", the history says null',
    ]

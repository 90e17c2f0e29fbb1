"""What tasks log through ``ctx.logger`` is kept per attempt by the worker that runs them
(a real worker on a SQLite file): each attempt's lines, bounded with one marker line,
from a thread, the event loop, a child process and the worker's own thread; written
while a long attempt runs, not only with its outcome."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from keel.runtime.execution import proven_fast
from keel.runtime.execution.task_logs import MAX_BYTES, MAX_LINE_BYTES, MAX_LINES
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.store.records import RunRecord
from keel.store.sqlite import SQLiteStore
from keel.store.task_logs import TaskLogLine
from tests.e2e import logflows

DEADLINE = 60.0


@pytest.fixture
def worker(store: SQLiteStore) -> Iterator[Worker]:
    made = Worker(store, WorkerOptions(concurrency=4))
    yield made
    made.close()


def run(worker: Worker, workflow: Any, **inputs: Any) -> RunRecord:
    run_id = worker.start_run(workflow.spec, inputs)
    (record,) = worker.run_until_finished([run_id])
    return record


def kept(store: SQLiteStore, run_id: str, **where: Any) -> list[TaskLogLine]:
    return store.task_logs(run_id, limit=100_000, **where)


def test_each_attempts_lines_are_kept_and_a_retry_keeps_both(
    store: SQLiteStore, worker: Worker
) -> None:
    record = run(worker, logflows.retried, word="hi")

    assert record.status == "succeeded"
    found = kept(store, record.id)
    assert [(line.seq, line.node, line.attempt, line.level, line.message) for line in found] == [
        (1, "chatty", 1, "INFO", "hi 1 of attempt 1"),
        (2, "chatty", 1, "INFO", "hi 2 of attempt 1"),
        (3, "chatty", 1, "INFO", "hi 3 of attempt 1"),
        (4, "chatty", 2, "INFO", "hi 1 of attempt 2"),
        (5, "chatty", 2, "INFO", "hi 2 of attempt 2"),
        (6, "chatty", 2, "INFO", "hi 3 of attempt 2"),
    ]
    assert all(line.item is None for line in found)
    assert [line.seq for line in kept(store, record.id, attempt=2)] == [4, 5, 6]


def test_past_the_line_bound_one_marker_says_how_many_were_dropped(
    store: SQLiteStore, worker: Worker
) -> None:
    record = run(worker, logflows.flooded, lines=5000)

    found = kept(store, record.id)
    assert len(found) == MAX_LINES + 1
    assert [line.message for line in found[:2]] == ["line 0 xxxxxxxxxx", "line 1 xxxxxxxxxx"]
    assert found[MAX_LINES - 1].message == "line 999 xxxxxxxxxx"
    assert found[-1].level == "WARNING"
    assert found[-1].message.startswith("… 4000 more lines dropped")


def test_past_the_byte_bound_lines_are_dropped_too(store: SQLiteStore, worker: Worker) -> None:
    record = run(worker, logflows.flooded, lines=400, size=1024)

    *lines, last = kept(store, record.id)
    assert sum(len(line.message.encode()) for line in lines) <= MAX_BYTES
    assert len(lines) < 400
    assert last.message.startswith(f"… {400 - len(lines)} more lines dropped")


def test_a_line_longer_than_the_bound_is_cut(store: SQLiteStore, worker: Worker) -> None:
    record = run(worker, logflows.flooded, lines=1, size=3 * MAX_LINE_BYTES)

    (line,) = kept(store, record.id)
    assert len(line.message.encode()) <= MAX_LINE_BYTES
    assert line.message.startswith("line 0 xxx")
    assert line.message.endswith("(line cut at 8 KiB)")


def test_a_process_isolated_tasks_lines_are_kept_with_its_traceback(
    store: SQLiteStore, worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="keel.task"):
        record = run(worker, logflows.isolated, word="box")

    assert record.status == "succeeded"
    warning, error = kept(store, record.id)
    assert (warning.node, warning.attempt, warning.level) == ("boxed", 1, "WARNING")
    assert warning.message == "from the child: box"
    assert error.level == "ERROR"
    assert error.message.startswith("caught it\nTraceback (most recent call last):")
    assert "KeyError: 'box'" in error.message
    # the worker's own log has them too, as it has a thread's lines
    logged = [r for r in caplog.records if r.name == "keel.task.boxed"]
    assert [(r.getMessage(), r.__dict__["run_id"], r.levelname) for r in logged] == [
        ("from the child: box", record.id, "WARNING"),
        (error.message, record.id, "ERROR"),
    ]


def test_a_process_isolated_task_is_bounded_the_same_way(
    store: SQLiteStore, worker: Worker
) -> None:
    record = run(worker, logflows.isolated_flood, lines=1500)

    found = kept(store, record.id)
    assert len(found) == MAX_LINES + 1
    assert found[-1].message.startswith("… 500 more lines dropped")


def test_an_async_tasks_lines_are_kept(store: SQLiteStore, worker: Worker) -> None:
    record = run(worker, logflows.asynchronous, word="later")

    assert [line.message for line in kept(store, record.id)] == ["awaited later"]


def test_each_item_of_a_map_keeps_its_own_lines(store: SQLiteStore, worker: Worker) -> None:
    record = run(worker, logflows.mapped, values=[5, 6, 7])

    found = sorted(kept(store, record.id), key=lambda line: line.item or 0)
    assert [(line.node, line.item, line.message) for line in found] == [
        ("item", 0, "item 5"), ("item", 1, "item 6"), ("item", 2, "item 7"),
    ]  # fmt: skip


def test_tasks_run_on_the_workers_own_thread_keep_their_lines(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain of fast steps: after three fast calls they run on the worker's thread
    (fast: under a bound this test makes a minute, so a busy machine changes nothing)."""
    monkeypatch.setattr(proven_fast, "FAST_BOUND", 60.0)
    worker = Worker(store, WorkerOptions(concurrency=4))
    try:
        record = run(worker, logflows.logged_chain, n=0)
        assert worker.executor._proven.proven("tests.e2e.logflows:step")
    finally:
        worker.close()

    assert record.output == {"result": 8}
    assert [line.message for line in kept(store, record.id)] == [
        f"step {n}" for n in range(8)
    ]  # fmt: skip


def test_a_long_attempts_lines_are_written_while_it_runs(
    store: SQLiteStore, worker: Worker
) -> None:
    logflows.release.clear()
    run_id = worker.start_run(logflows.holding.spec, {})
    records: list[RunRecord] = []
    thread = threading.Thread(target=lambda: records.extend(worker.run_until_finished([run_id])))
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while not kept(store, run_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [line.message for line in kept(store, run_id)] == ["started"]
        assert store.get_run(run_id).status == "running"
    finally:
        logflows.release.set()
        thread.join(DEADLINE)
    assert records[0].status == "succeeded"
    assert [line.message for line in kept(store, run_id)] == ["started", "released"]


def test_a_task_that_logs_nothing_leaves_nothing(store: SQLiteStore, worker: Worker) -> None:
    record = run(worker, logflows.quiet_chain, n=1)

    assert record.output == {"result": 4}
    assert kept(store, record.id) == []
    assert not worker.task_logs._logs


def test_lines_of_attempts_this_worker_does_not_run_are_not_kept(
    store: SQLiteStore, worker: Worker
) -> None:
    from keel.runtime.execution.context import bound_logger

    bound_logger("elsewhere", "chatty", 1).warning("not an attempt of this worker")
    record = run(worker, logflows.retried, word="w")
    bound_logger(record.id, "chatty", 2).warning("after the attempt was recorded")

    assert "not an attempt" not in str(kept(store, record.id))
    assert len(kept(store, record.id)) == 6
    assert not worker.task_logs._logs


# --- the buffer itself --------------------------------------------------------------------


def test_an_attempts_lines_stay_until_its_outcome_is_recorded() -> None:
    """A transition refused (the run moved) is decided again: it needs the lines again."""
    from keel.runtime.execution.context import bound_logger
    from keel.runtime.execution.task_logs import TaskLogs
    from keel.store.records import Lease

    running = {("r", "n", None): Lease("r", "n", None, 1, "w", 0.0)}
    written: list[Any] = []
    logs = TaskLogs(running, written.extend)
    key = ("r", "n", None, 1)
    bound_logger("r", "n", 1).info("one")

    first = logs.closing(key, 5.0)
    assert first is not None
    assert [line.message for line in first.lines] == ["one"]
    assert logs.closing(key, 5.0) == first
    logs.end(key)
    assert logs.closing(key, 5.0) is None
    assert written == []


def test_a_flush_writes_each_line_once_and_forgets_attempts_no_longer_running() -> None:
    from keel.runtime.execution.context import bound_logger
    from keel.runtime.execution.task_logs import FLUSH_EVERY, TaskLogs
    from keel.store.records import Lease

    running = {("r", "n", None): Lease("r", "n", None, 1, "w", 0.0)}
    written: list[Any] = []
    logs = TaskLogs(running, written.extend)
    bound_logger("r", "n", 1).info("one")

    logs.flush(lambda: 100.0)
    logs.flush(lambda: 100.0 + FLUSH_EVERY)  # nothing new
    bound_logger("r", "n", 1).info("two")
    logs.flush(lambda: 100.0 + 1.5 * FLUSH_EVERY)  # not due yet
    assert [[line.message for line in batch.lines] for batch in written] == [["one"]]
    logs.flush(lambda: 100.0 + 2 * FLUSH_EVERY)
    assert [[line.message for line in batch.lines] for batch in written] == [["one"], ["two"]]

    closing = logs.closing(("r", "n", None, 1), 200.0)
    assert closing is None  # everything is written
    running.clear()  # given back
    logs.flush(lambda: 100.0 + 3 * FLUSH_EVERY)
    assert not logs._logs

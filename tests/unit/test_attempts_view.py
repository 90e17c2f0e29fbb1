"""``attempts_of``: every attempt of a run read from its history (the run page's
timeline and per-attempt input/output), and ``log_tail``: the last lines first."""

from __future__ import annotations

from typing import Any

import pytest

from keel.engine.plan import compile_plan
from keel.runtime.views import task_logs
from keel.runtime.views.attempts import attempts_of
from keel.runtime.views.task_logs import log_tail
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.store.sqlite import SQLiteStore
from tests.e2e import logflows


def executed(store: SQLiteStore, workflow: Any, **inputs: Any) -> str:
    worker = Worker(store, WorkerOptions(concurrency=2))
    try:
        run_id = worker.start_run(workflow.spec, inputs)
        worker.run_until_finished([run_id])
    finally:
        worker.close()
    return run_id


def test_a_retry_is_an_attempt_of_its_own_with_its_input_and_outcome(store: SQLiteStore) -> None:
    run_id = executed(store, logflows.retried, word="hi")

    first, second = attempts_of(store.history(run_id))

    assert (first.node, first.attempt, first.outcome) == (second.node, 1, "failed")
    assert (second.attempt, second.outcome, second.output) == (2, "succeeded", "hi")
    assert first.error is not None
    assert first.error.type == "ValueError"
    assert first.args == second.args == {"word": "hi"}
    for attempt in (first, second):
        assert attempt.queued_at is not None
        assert attempt.started_at is not None
        assert attempt.ended_at is not None
        assert attempt.queued_at <= attempt.started_at <= attempt.ended_at
        assert attempt.worker
    assert first.ended_at <= second.queued_at  # type: ignore[operator]


def test_a_map_has_an_attempt_per_item(store: SQLiteStore) -> None:
    run_id = executed(store, logflows.mapped, values=[5, 6, 7])

    found = attempts_of(store.history(run_id))

    assert sorted((a.item, a.outcome, a.output) for a in found) == [
        (0, "succeeded", 5), (1, "succeeded", 6), (2, "succeeded", 7)]  # fmt: skip


def test_the_log_tail_is_the_last_lines_and_pages_back(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_logs, "_SCAN", 64)  # read in many pages
    run_id = executed(store, logflows.flooded, lines=900, size=1)
    record = store.get_run(run_id)
    plan = compile_plan(logflows.flooded.spec)

    tail = log_tail(store, record, plan, node=None, attempt=None, before=None, limit=200)
    earlier = log_tail(store, record, plan, node=None, attempt=1, before=tail[0].seq, limit=200)

    assert [line.message for line in tail] == [f"line {n} x" for n in range(700, 900)]
    assert [line.message for line in earlier] == [f"line {n} x" for n in range(500, 700)]

"""Proven-fast sync tasks run on the calling thread (the worker's), not handed to a task
thread: only after a few fast runs, back to threads after one slow run, with timeouts,
errors, context variables and Ctrl-C as on a thread; never with ``inline=False``.

Runs are timed by ``inline_tasks.timer``, which a task moves to make its run slow: no
test depends on how long anything really takes.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from keel.engine.events import NodeSucceeded
from keel.runtime.execution import proven_fast
from keel.runtime.execution.executor import Executor
from keel.runtime.execution.invoke import Invocation, Outcome, TaskCatalog, make_context
from keel.runtime.execution.proven_fast import ProvenFast
from keel.runtime.operations.control import start_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import parse_spec
from keel.store.sqlite import SQLiteStore
from tests.unit import inline_tasks

RUNS = 3  # fast runs before a task runs on the calling thread, in these tests
Reported = queue.SimpleQueue[tuple[Any, Outcome]]


@pytest.fixture(autouse=True)
def fresh_tasks() -> Iterator[None]:
    inline_tasks.reset()
    yield
    inline_tasks.timed_out.set()  # never leave a task waiting


def make_executor(inline: bool = True) -> Executor:
    proven = ProvenFast(runs=RUNS, bound=0.5, timer=inline_tasks.timer)
    return Executor(threads=2, inline=inline, proven=proven)


@pytest.fixture
def executor() -> Iterator[Executor]:
    made = make_executor()
    yield made
    made.shutdown(wait=True)


def attempt(task: str = "where", **args: Any) -> Invocation:
    ctx = make_context("run-1", "wf", "step", 1, None)
    return Invocation(TaskCatalog(), f"{inline_tasks.TASKS}:{task}", args, ctx)


def reporter(reported: Reported) -> Any:
    return lambda key, outcome: reported.put((key, outcome))


def run(executor: Executor, timeout: float | None = None, **args: Any) -> Outcome:
    """One attempt of ``where``, waited for; its outcome."""
    reported: Reported = queue.SimpleQueue()
    executor.submit("attempt", attempt(**args), timeout, reporter(reported))
    _, outcome = reported.get(timeout=30)
    return outcome


def thread_of(outcome: Outcome) -> int:
    assert outcome.error is None, outcome.error
    assert isinstance(outcome.output, int)
    return int(outcome.output)


def test_a_task_runs_on_the_calling_thread_once_its_last_runs_were_fast(
    executor: Executor,
) -> None:
    here = threading.get_ident()
    first = [thread_of(run(executor)) for _ in range(RUNS)]
    assert here not in first

    for _ in range(2):
        reported: Reported = queue.SimpleQueue()
        executor.submit("attempt", attempt(), None, reporter(reported))
        _, outcome = reported.get_nowait()  # reported before submit returned
        assert thread_of(outcome) == here
        assert reported.empty()  # exactly once


def test_one_slow_run_on_the_calling_thread_sends_the_task_back_to_threads(
    executor: Executor,
) -> None:
    here = threading.get_ident()
    for _ in range(RUNS):
        run(executor)
    assert thread_of(run(executor, slow=True)) == here  # proven fast, so run here: slow

    after = [thread_of(run(executor)) for _ in range(RUNS + 1)]
    assert here not in after[:RUNS]  # it has to prove itself again
    assert after[RUNS] == here


def test_a_slow_run_on_a_thread_restarts_the_count(executor: Executor) -> None:
    here = threading.get_ident()
    for _ in range(RUNS - 1):
        run(executor)
    assert thread_of(run(executor, slow=True)) != here

    after = [thread_of(run(executor)) for _ in range(RUNS + 1)]
    assert here not in after[:RUNS]
    assert after[RUNS] == here


def test_an_inline_attempt_fails_at_its_timeout_and_its_result_goes_to_on_late(
    executor: Executor,
) -> None:
    here = threading.get_ident()
    for _ in range(RUNS):
        run(executor, timeout=30.0)  # proven with a timeout, on threads
    done: Reported = queue.SimpleQueue()
    late: Reported = queue.SimpleQueue()

    def on_done(key: Any, outcome: Outcome) -> None:
        done.put((key, outcome))
        inline_tasks.timed_out.set()  # the task, here, waits for this

    executor.submit("slow", attempt(wait_for_timeout=True), 0.01, on_done, reporter(late))

    key, outcome = done.get_nowait()  # from the timeout thread, while the task waited
    assert key == "slow"
    assert outcome.error is not None
    assert outcome.error.type == "TimeoutError"
    key, result = late.get_nowait()  # the task's own result, once it returned
    assert key == "slow"
    assert thread_of(result) == here
    assert done.empty()
    assert late.empty()
    assert executor.overdue() == 0


def test_an_exception_in_an_inline_attempt_is_its_error_outcome(executor: Executor) -> None:
    for _ in range(RUNS):
        run(executor)
    reported: Reported = queue.SimpleQueue()
    executor.submit("failing", attempt(fail=True), None, reporter(reported))

    _, outcome = reported.get_nowait()  # it ran here
    assert outcome.error is not None
    assert outcome.error.type == "ValueError"
    assert outcome.error.message == "failed on purpose"
    assert reported.empty()


class _Broken(Invocation):
    """An attempt whose machinery itself raises (not the task): the executor's guard."""

    def run(self, started: Any = None, *, interruptible: bool = False) -> Outcome:
        raise RuntimeError("the machinery broke")


def test_an_exception_escaping_an_inline_run_still_ends_the_attempt() -> None:
    proven = ProvenFast(runs=1, bound=0.5, timer=inline_tasks.timer)
    executor = Executor(threads=1, proven=proven)
    broken = _Broken(TaskCatalog(), f"{inline_tasks.TASKS}:where", {}, attempt().ctx)
    proven.note(broken.task, 0.0)
    reported: Reported = queue.SimpleQueue()
    try:
        executor.submit("broken", broken, None, reporter(reported))
    finally:
        executor.shutdown(wait=True)

    _, outcome = reported.get_nowait()
    assert outcome.error is not None
    assert outcome.error.type == "RuntimeError"
    assert outcome.error.message == "the machinery broke"


def test_a_proven_task_that_is_not_alone_runs_on_a_thread(executor: Executor) -> None:
    for _ in range(RUNS):
        run(executor)
    here = threading.get_ident()
    assert thread_of(run(executor)) == here  # proven
    reported: Reported = queue.SimpleQueue()
    executor.submit("attempt", attempt(), None, reporter(reported), alone=False)
    _, outcome = reported.get(timeout=30)
    assert thread_of(outcome) != here, "another attempt runs: it may wait for this one"


def test_with_inline_off_no_attempt_runs_on_the_calling_thread() -> None:
    executor = make_executor(inline=False)
    try:
        threads = [thread_of(run(executor)) for _ in range(RUNS + 3)]
    finally:
        executor.shutdown(wait=True)
    assert threading.get_ident() not in threads


def test_an_inline_task_sees_its_step_context_and_no_variable_of_the_calling_thread(
    executor: Executor,
) -> None:
    here = threading.get_ident()
    token = inline_tasks.marker.set("set by the caller")
    try:
        on_threads = [_seen(executor) for _ in range(RUNS)]
        assert here not in [seen["thread"] for seen in on_threads]

        seen = _seen(executor)
        assert seen["thread"] == here
        assert seen["marker"] == "unset"  # as on a new thread
        assert seen["node"] == "step"
        assert inline_tasks.marker.get() == "set by the caller"  # not the task's value
        assert _seen(executor)["marker"] == "unset"  # nor left for the next task here
    finally:
        inline_tasks.marker.reset(token)


def _seen(executor: Executor) -> dict[str, Any]:
    reported: Reported = queue.SimpleQueue()
    executor.submit("context", attempt("sees_context"), None, reporter(reported))
    _, outcome = reported.get(timeout=30)
    assert outcome.error is None, outcome.error
    assert isinstance(outcome.output, dict)
    return outcome.output


def test_a_thread_running_an_asyncio_loop_hands_even_proven_tasks_to_threads(
    executor: Executor,
) -> None:
    for _ in range(RUNS):
        run(executor)

    async def from_a_loop() -> Outcome:
        return run(executor)  # a sync task there might call asyncio.run

    assert thread_of(asyncio.run(from_a_loop())) != threading.get_ident()
    assert thread_of(run(executor)) == threading.get_ident()  # no loop: here again


def test_ctrl_c_in_an_inline_task_on_the_main_thread_stops_the_caller(
    executor: Executor,
) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Ctrl-C arrives on the main thread; the tests run on another")
    for _ in range(RUNS):
        run(executor)
    reported: Reported = queue.SimpleQueue()

    with pytest.raises(KeyboardInterrupt):
        executor.submit("interrupted", attempt(interrupt=True), 0.01, reporter(reported))
    assert reported.empty()  # not the task's failure: its lease goes back with the worker's

    # a later deadline: once it has fired, the timeout thread is past the first one
    later: Reported = queue.SimpleQueue()

    def on_done(key: Any, outcome: Outcome) -> None:
        later.put((key, outcome))
        inline_tasks.timed_out.set()

    executor.submit("later", attempt(wait_for_timeout=True), 0.02, on_done)
    _, outcome = later.get_nowait()
    assert outcome.error is not None
    assert outcome.error.type == "TimeoutError"
    assert reported.empty()  # the interrupted attempt's timeout handed nothing on
    assert executor.overdue() == 0  # neither waits for a late result any more


def test_a_keyboard_interrupt_off_the_main_thread_is_the_tasks_failure(
    executor: Executor,
) -> None:
    outcomes: list[Outcome] = []

    def on_a_thread() -> None:
        for _ in range(RUNS):
            run(executor)
        outcomes.append(run(executor, interrupt=True))

    thread = threading.Thread(target=on_a_thread)
    thread.start()
    thread.join(timeout=30)

    (outcome,) = outcomes
    assert outcome.error is not None
    assert outcome.error.type == "KeyboardInterrupt"


# --- in the worker ------------------------------------------------------------------------------


def chain(length: int) -> Any:
    nodes: list[dict[str, Any]] = [{"id": "n0", "task": f"{inline_tasks.TASKS}:where"}]
    for index in range(1, length):
        nodes.append(
            {
                "id": f"n{index}",
                "task": f"{inline_tasks.TASKS}:where",
                "args": {"after": f"${{{{ nodes.n{index - 1}.output }}}}"},
            }
        )
    return parse_spec({"name": "chain", "nodes": nodes})


def threads_of_steps(store: SQLiteStore, inline: bool) -> list[int]:
    record = start_run(store, chain(RUNS + 3), {})
    worker = Worker(store, WorkerOptions(inline=inline))
    try:
        (done,) = worker.run_until_finished([record.id])
    finally:
        worker.close()
    assert done.status == "succeeded"
    succeeded = [s.event for s in store.history(record.id) if isinstance(s.event, NodeSucceeded)]
    return [event.output for event in sorted(succeeded, key=lambda event: int(event.node[1:]))]


def test_a_worker_runs_a_proven_task_on_its_own_thread_and_records_it(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proven_fast, "FAST_BOUND", 60.0)  # every real run counts as fast
    monkeypatch.setattr(proven_fast, "FAST_RUNS", RUNS)
    threads = threads_of_steps(store, inline=True)

    here = threading.get_ident()  # run_until_finished runs the worker on this thread
    assert here not in threads[:RUNS]
    assert threads[RUNS:] == [here] * 3


def test_a_worker_with_inline_off_never_runs_a_task_on_its_own_thread(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proven_fast, "FAST_BOUND", 60.0)
    threads = threads_of_steps(store, inline=False)

    assert threading.get_ident() not in threads
    assert len(threads) == RUNS + 3

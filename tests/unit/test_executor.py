"""The executor's timeout thread: one thread fails every thread-run attempt whose timeout
passed, so nothing one attempt brings (an absurd timeout, a callback that raises) may stop
it from failing the others.

The timeouts here are given to the executor directly, below spec validation, which
refuses such durations: this is the defence behind that check.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from keel.runtime.execution.executor import Executor
from keel.runtime.execution.invoke import Invocation, Outcome, TaskCatalog, make_context
from tests.unit import runtime_tasks

TASKS = "tests.unit.runtime_tasks"

Reported = queue.SimpleQueue[tuple[Any, Outcome]]


@pytest.fixture
def probe() -> Iterator[runtime_tasks.Probe]:
    current = runtime_tasks.reset()
    yield current
    current.release.set()  # let the blocked task threads return


@pytest.fixture
def executor() -> Iterator[Executor]:
    executor = Executor(threads=4)
    yield executor
    executor.shutdown(wait=True)


def blocking(name: str) -> Invocation:
    """An attempt that blocks until the test releases it: only a timeout ends it early."""
    ctx = make_context("run-1", "wf", name, 1, None)
    return Invocation(TaskCatalog(), f"{TASKS}:blocking", {"name": name}, ctx)


def reporter(reported: Reported) -> Any:
    return lambda key, outcome: reported.put((key, outcome))


@pytest.mark.parametrize("absurd", [1e18, 1e300, float("inf"), float("nan")])
def test_an_absurd_timeout_does_not_stop_a_later_timeout_from_firing(
    executor: Executor, probe: runtime_tasks.Probe, absurd: float
) -> None:
    reported: Reported = queue.SimpleQueue()
    executor.submit("absurd", blocking("absurd"), absurd, reporter(reported))
    executor.submit("normal", blocking("normal"), 0.05, reporter(reported))

    key, outcome = reported.get(timeout=30)
    assert key == "normal"
    assert outcome.error is not None
    assert outcome.error.type == "TimeoutError"


def test_an_error_in_the_timeout_thread_is_logged_and_it_goes_on(
    executor: Executor, probe: runtime_tasks.Probe, caplog: pytest.LogCaptureFixture
) -> None:
    reported: Reported = queue.SimpleQueue()
    fired = threading.Event()

    def broken(key: Any, outcome: Outcome) -> None:
        fired.set()
        raise RuntimeError("the callback broke")

    with caplog.at_level(logging.ERROR, logger="keel.executor"):
        executor.submit("broken", blocking("broken"), 0.01, broken)
        assert fired.wait(timeout=30)
        executor.submit("normal", blocking("normal"), 0.05, reporter(reported))
        key, outcome = reported.get(timeout=30)

    assert key == "normal"
    assert outcome.error is not None
    assert outcome.error.type == "TimeoutError"
    (record,) = [r for r in caplog.records if r.name == "keel.executor"]
    assert "'broken'" in record.getMessage()
    assert record.exc_info is not None
    assert "the callback broke" in str(record.exc_info[1])


def test_the_timeout_thread_forgets_attempts_that_ended_and_keeps_the_others() -> None:
    """Most attempts end long before their timeout: their deadlines must not pile up
    (a worker doing a thousand steps a second with hour-long timeouts)."""
    from keel.runtime.execution.executor import _COMPACT_FROM, _Once, _Watchdog

    watchdog = _Watchdog()
    overdue: set[_Once] = set()
    running = _Once("still running", lambda key, outcome: None, None, overdue)
    try:
        watchdog.watch(3600, running, Outcome())
        for index in range(3 * _COMPACT_FROM):
            once = _Once(index, lambda key, outcome: None, None, overdue)
            watchdog.watch(3600, once, Outcome())
            once.end(Outcome(output=index), late_if_ended=True)
        assert len(watchdog._heap) < 2 * _COMPACT_FROM
        assert any(entry[2] is running for entry in watchdog._heap)
    finally:
        watchdog.stop()

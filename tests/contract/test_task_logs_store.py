"""The task logs' table on every backend: lines numbered per run in the order written,
read back a page at a time after a ``seq``, of one node or attempt; written with an
attempt's outcome (``KeepLogs``) in its transaction, so a refused transition leaves
none behind."""

from __future__ import annotations

import pytest

from keel.engine.events import NodeSucceeded
from keel.store import Store
from keel.store.task_logs import AttemptLines, LogLine, TaskLogLine
from keel.store.writes import KeepLogs
from tests.contract.conftest import T0, Driver, make_spec, map_spec


def lines(run_id: str, node: str, attempt: int, *messages: str, item: int | None = None,
          level: str = "INFO") -> AttemptLines:  # fmt: skip
    return AttemptLines(run_id, node, item, attempt,
                        [LogLine(T0 + i, level, m) for i, m in enumerate(messages)])  # fmt: skip


def texts(found: list[TaskLogLine]) -> list[tuple[int, str, int, str]]:
    return [(line.seq, line.node, line.attempt, line.message) for line in found]


def test_lines_are_numbered_per_run_in_the_order_written(store: Store) -> None:
    Driver(store, make_spec(), "run-1").start()
    Driver(store, make_spec(), "run-2").start()
    store.keep_task_logs([lines("run-1", "a", 1, "one", "two"), lines("run-2", "a", 1, "x")])
    store.keep_task_logs([lines("run-1", "b", 1, "three")])
    store.keep_task_logs([])  # nothing to write: no write

    assert texts(store.task_logs("run-1")) == [
        (1, "a", 1, "one"), (2, "a", 1, "two"), (3, "b", 1, "three"),
    ]  # fmt: skip
    assert texts(store.task_logs("run-2")) == [(1, "a", 1, "x")]
    assert store.task_logs("run-3") == []


def test_a_page_after_a_seq_of_one_node_or_attempt(store: Store) -> None:
    Driver(store, make_spec(), "run-1").start()
    store.keep_task_logs([lines("run-1", "a", 1, "a1", "a1'"), lines("run-1", "a", 2, "a2"),
                          lines("run-1", "b", 1, "b1")])  # fmt: skip

    assert texts(store.task_logs("run-1", after=2)) == [(3, "a", 2, "a2"), (4, "b", 1, "b1")]
    assert texts(store.task_logs("run-1", limit=2)) == [(1, "a", 1, "a1"), (2, "a", 1, "a1'")]
    assert texts(store.task_logs("run-1", node="a", attempt=2)) == [(3, "a", 2, "a2")]
    assert texts(store.task_logs("run-1", attempt=1)) == [
        (1, "a", 1, "a1"), (2, "a", 1, "a1'"), (4, "b", 1, "b1"),
    ]  # fmt: skip
    assert texts(store.task_logs("run-1", node="b", after=3)) == [(4, "b", 1, "b1")]
    assert store.task_logs("run-1", node="c") == []


def test_a_line_keeps_its_item_time_level_and_text(store: Store) -> None:
    Driver(store, map_spec(), "run-1", {"items": [1, 2]}).start()
    text = "naïve ✓ \n  Traceback (most recent call last):\n" + "y" * 8000
    store.keep_task_logs([lines("run-1", "fan", 3, text, item=1, level="ERROR")])

    (line,) = store.task_logs("run-1")
    assert line == TaskLogLine("run-1", 1, "fan", 1, 3, T0, "ERROR", text)


def test_lines_go_in_with_the_attempts_outcome(store: Store) -> None:
    driver = Driver(store, make_spec(), "run-1")
    driver.start()
    (a,) = driver.claim("w1")
    event = NodeSucceeded(node="a", attempt=1, output="A")
    transition = driver.step([event], (a.lease,))
    driver.commit(transition.adding(KeepLogs(lines("run-1", "a", 1, "done"))))

    assert texts(store.task_logs("run-1")) == [(1, "a", 1, "done")]


def test_a_refused_transition_leaves_no_line_behind(store: Store) -> None:
    driver = Driver(store, make_spec(), "run-1")
    driver.start()
    (a,) = driver.claim("w1")
    event = NodeSucceeded(node="a", attempt=1, output="A")
    stale = driver.step([event], (a.lease,)).adding(KeepLogs(lines("run-1", "a", 1, "lost")))
    driver.commit(driver.step([NodeSucceeded(node="a", attempt=1, output="first")], (a.lease,)))

    other = Driver(store, make_spec(), "run-2")
    other.start()
    (b,) = other.claim("w1")
    kept = other.step([NodeSucceeded(node="a", attempt=1, output="B")], (b.lease,))
    results = store.commit([stale, kept.adding(KeepLogs(lines("run-2", "a", 1, "kept")))])

    assert results[0].error is not None  # the run moved on (its lease is gone too)
    assert results[1].error is None
    assert store.task_logs("run-1") == []
    assert texts(store.task_logs("run-2")) == [(1, "a", 1, "kept")]


@pytest.mark.parametrize("after", [0, 5])
def test_lines_written_after_a_read_come_after_it(store: Store, after: int) -> None:
    """What ``--follow`` relies on: the next page, read after the last seq, has the lines
    committed since, whichever attempt wrote them."""
    Driver(store, make_spec(), "run-1").start()
    store.keep_task_logs([lines("run-1", "a", 1, *[f"l{i}" for i in range(after)])])
    seen = store.task_logs("run-1")
    last = seen[-1].seq if seen else 0
    store.keep_task_logs([lines("run-1", "b", 1, "new"), lines("run-1", "a", 1, "newer")])

    assert texts(store.task_logs("run-1", after=last)) == [
        (after + 1, "b", 1, "new"), (after + 2, "a", 1, "newer"),
    ]  # fmt: skip

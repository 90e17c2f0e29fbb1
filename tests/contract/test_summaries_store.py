"""The store contract for summaries of runs (``keel.store.summaries``), on every
backend: runs created and ended per step of a window (the overview's throughput), and
failed runs grouped by error type and failed node, each group counting what the runs
list filtered the same way counts."""

from __future__ import annotations

from keel.engine import ErrorInfo, NodeFailed
from keel.store import Store
from keel.store.summaries import FailureGroup, Throughput
from keel.store.writes import SetStatus
from tests.contract.conftest import T0, Driver, make_spec
from tests.contract.test_alerts_store import ended, run, write

H = 3600.0


def test_throughput_counts_runs_created_and_ended_in_each_step(store: Store) -> None:
    ended(store, "before", "claim", T0 - 10, 20, "succeeded")  # created before the window
    ended(store, "ok", "claim", T0 + 5, 10, "succeeded")  # created and ended in step 0
    ended(store, "bad", "claim", T0 + H - 1, 2, "failed")  # created in step 0, ended in 1
    ended(store, "gone", "other", T0 + H + 1, 3 * H, "cancelled")  # ended after the window
    run(store, "going", "claim", T0 + 2 * H + 30)  # not ended
    run(store, "later", "claim", T0 + 3 * H)  # created after the window

    found = store.throughput(T0, H, 3)

    assert found == Throughput(T0, H, [2, 1, 1], {"succeeded": [2, 0, 0], "failed": [0, 1, 0],
                                                   "cancelled": [0, 0, 0]})  # fmt: skip
    assert found.ended_total() == [2, 1, 0]
    assert store.throughput(T0 + 10 * H, H, 2) == Throughput(
        T0 + 10 * H, H, [0, 0], {"succeeded": [0, 0], "failed": [0, 0], "cancelled": [0, 0]}
    )


def test_a_run_reopened_and_ended_again_counts_once_at_its_last_end(store: Store) -> None:
    ended(store, "again", "claim", T0, 10, "failed")
    write(store, "again", T0 + H + 5, SetStatus("running"))
    write(store, "again", T0 + H + 9, SetStatus("succeeded"))

    found = store.throughput(T0, H, 2)

    assert found.started == [1, 0]
    assert found.ended["failed"] == [0, 0]
    assert found.ended["succeeded"] == [0, 1]


def failed(store: Store, run_id: str, created: float, error_type: str, node: str = "a") -> None:
    """A run of ``make_spec`` whose ``node`` fails with ``error_type`` at ``created + 1``."""
    driver = Driver(store, make_spec("claim"), run_id)
    driver.now = created
    driver.start()
    if node == "b":
        (first,) = driver.claim()
        driver.succeed(first.lease, "A")
    (claimed,) = driver.claim()
    error = ErrorInfo(type=error_type, message="no", retryable=False)
    driver.commit(driver.step([NodeFailed(node=node, attempt=1, error=error)], (claimed.lease,)))


def test_failed_runs_are_grouped_by_error_type_and_node_as_count_runs_counts(
    store: Store,
) -> None:
    failed(store, "old", T0 - H, "Boom")
    failed(store, "boom-1", T0, "Boom")
    failed(store, "boom-2", T0 + 10, "Boom")
    failed(store, "key-b", T0 + 20, "KeyError", node="b")
    failed(store, "key-a", T0 + 30, "KeyError")
    ended(store, "ok", "claim", T0, 5, "succeeded")
    run(store, "going", "claim", T0)

    assert store.failure_groups() == [
        FailureGroup("Boom", "a", 3, T0 + 10),
        FailureGroup("KeyError", "a", 1, T0 + 30),
        FailureGroup("KeyError", "b", 1, T0 + 20),
    ]
    groups = store.failure_groups(created_after=T0)
    assert groups[0] == FailureGroup("Boom", "a", 2, T0 + 10)
    for group in groups:
        counted = store.count_runs(status="failed", error_type=group.error_type,
                                   node=group.node, created_after=T0)  # fmt: skip
        assert counted == {"failed": group.count}
    assert store.failure_groups(created_after=T0, limit=1) == groups[:1]
    assert store.failure_groups(created_after=T0 + H) == []


def test_a_run_retried_by_hand_leaves_its_failure_group(store: Store) -> None:
    failed(store, "again", T0, "Boom")
    write(store, "again", T0 + 5, SetStatus("running"))

    assert store.failure_groups() == []

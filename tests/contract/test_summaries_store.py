"""The store contract for summaries of runs (``keel.store.summaries``), on every
backend: runs created and ended per step of a window (the overview's throughput), and
failed runs grouped by error type and failed node, each group counting what the runs
list filtered the same way counts."""

from __future__ import annotations

from keel.store import Store
from keel.store.summaries import Throughput
from keel.store.writes import SetStatus
from tests.contract.conftest import T0
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

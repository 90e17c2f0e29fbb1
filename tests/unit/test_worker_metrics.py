"""What a worker counts in its ``Metrics``, in-process over a real SQLite store: the runs
it starts (``keel run``'s ``start_run``) and the child runs its commits create, the
attempts it reclaims from a holder whose lease expired, its slots while an attempt runs,
and that the attempts' durations and queue lag are the times of their history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keel.engine.events import NodeFailed, NodeStarted, NodeSucceeded
from keel.runtime.clock import FakeClock
from keel.runtime.metrics import MOST_ERROR_TYPES, MOST_NODES, OTHER, Metrics
from keel.runtime.operations.control import start_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec.registry import SpecRegistry
from keel.store.sqlite import SQLiteStore
from tests.server import metricflows
from tests.server.metricflows import family, held, two_steps, wide


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition()[0].decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "keel.db")
    yield opened
    opened.close()


def test_a_worker_counts_the_runs_it_starts_and_the_child_runs_it_creates(
    store: SQLiteStore,
) -> None:
    metrics = Metrics()
    worker = Worker(store, WorkerOptions(concurrency=2), metrics=metrics)
    try:
        parent = worker.start_run(family(), {}, registry=SpecRegistry([two_steps()]))
        (done,) = worker.run_until_finished([parent])
    finally:
        worker.close()

    assert done.status == "succeeded"
    found = samples(metrics)
    assert found[("keel_runs_started_total", (("workflow", "family"),))] == 1
    assert found[("keel_runs_started_total", (("workflow", "two_steps"),))] == 1  # the child
    for workflow in ("family", "two_steps"):
        key = ("keel_runs_finished_total", (("status", "succeeded"), ("workflow", workflow)))
        assert found[key] == 1


def test_a_worker_counts_what_it_reclaims_from_an_expired_lease(store: SQLiteStore) -> None:
    clock, metrics = FakeClock(), Metrics()
    start_run(store, two_steps(), {"n": 0}, clock=clock)
    store.claim("another-host.invalid:4242:100:cafe01", 1, clock.now(), 30)
    worker = Worker(store, WorkerOptions(), clock=clock, metrics=metrics)
    try:
        clock.advance(31)
        assert len(worker.reclaim()) == 1
    finally:
        worker.close()

    assert samples(metrics)[("keel_attempts_reclaimed_total", ())] == 1


def test_the_slots_say_how_many_attempts_run_now(store: SQLiteStore) -> None:
    metrics = Metrics()
    metricflows.release.clear()
    worker = Worker(store, WorkerOptions(concurrency=3), metrics=metrics)
    try:
        run = start_run(store, held(), {}).id
        while not worker.step():  # until it claims the attempt, which then waits
            pass
        running = samples(metrics)
        metricflows.release.set()
        worker.run_until_finished([run])
    finally:
        metricflows.release.set()
        worker.close()

    assert running[("keel_worker_slots", (("state", "used"),))] == 1
    assert running[("keel_worker_slots", (("state", "free"),))] == 2
    after = samples(metrics)
    assert after[("keel_worker_slots", (("state", "used"),))] == 0


def test_queue_lag_is_from_ready_to_start(store: SQLiteStore) -> None:
    clock, metrics = FakeClock(), Metrics()
    run = start_run(store, two_steps(), {"n": 0}, clock=clock).id
    clock.advance(7)  # the first attempt waits 7 s on its queue
    worker = Worker(store, WorkerOptions(), clock=clock, metrics=metrics)
    try:
        worker.run_until_finished([run])
    finally:
        worker.close()

    found = samples(metrics)
    assert found[("keel_queue_lag_seconds_sum", (("queue", "default"),))] == 7
    assert found[("keel_queue_lag_seconds_sum", (("queue", "io"),))] == 0  # leased on commit


def test_a_duration_is_from_the_attempts_start_to_its_outcome_in_the_history(
    store: SQLiteStore,
) -> None:
    metrics = Metrics()
    worker = Worker(store, WorkerOptions(), metrics=metrics)
    try:
        run = worker.start_run(two_steps(), {"n": 1})  # ``save`` fails once, then succeeds
        worker.run_until_finished([run])
    finally:
        worker.close()

    history = store.history(run)
    started = {(e.event.node, e.event.attempt): e.at for e in history
               if isinstance(e.event, NodeStarted)}  # fmt: skip
    ended = {(e.event.node, e.event.attempt): e.at for e in history
             if isinstance(e.event, NodeSucceeded | NodeFailed)}  # fmt: skip
    found = samples(metrics)
    for node in ("fetch", "save"):
        expected = sum(at - started[key] for key, at in ended.items() if key[0] == node)
        key = ("keel_attempt_duration_seconds_sum", (("node", node), ("workflow", "two_steps")))
        assert found[key] == pytest.approx(expected)
    assert len([key for key in ended if key[0] == "save"]) == 2


def test_a_workflow_gets_series_for_its_first_nodes_and_the_rest_share_one(
    store: SQLiteStore,
) -> None:
    metrics = Metrics()
    worker = Worker(store, WorkerOptions(concurrency=8), metrics=metrics)
    try:
        run = worker.start_run(wide(MOST_NODES + 5), {})
        (done,) = worker.run_until_finished([run])
    finally:
        worker.close()

    assert done.status == "succeeded"
    counted = {dict(labels)["node"]: value for (name, labels), value in samples(metrics).items()
               if name == "keel_attempts_total"}  # fmt: skip
    assert len(counted) == MOST_NODES + 1
    assert counted[OTHER] == 5
    assert sum(counted.values()) == MOST_NODES + 5


def test_a_workflow_gets_series_for_its_first_error_types_and_the_rest_share_one() -> None:
    metrics = Metrics()
    names = [metrics.error_label("w", f"Error{i}") for i in range(MOST_ERROR_TYPES + 3)]

    assert names == [f"Error{i}" for i in range(MOST_ERROR_TYPES)] + [OTHER] * 3
    assert metrics.error_label("w", "Error0") == "Error0"  # a type seen keeps its series
    assert metrics.error_label("other-workflow", "Error99") == "Error99"  # per workflow

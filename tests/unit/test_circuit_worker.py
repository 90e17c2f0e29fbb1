"""Circuit breakers in the worker loop, on a real SQLite store with a fake clock.

The worker counts how attempts of a node behind a circuit end (successes, and failures
with a retryable error) in the transition that records them; the store opens the
circuit after enough failures in a row, and the attempts that need it, retries
included, wait on the ready queue without holding a thread until a probe succeeds.

Tasks live in ``tests.unit.circuit_tasks``; its ``crm`` resource is down until a test
brings it up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import keel
from keel.engine.events import NodeFailed, NodeScheduled, NodeStarted, NodeSucceeded
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec.policies import CircuitPolicy, RetryPolicy
from keel.store import CircuitState
from keel.store.sqlite import SQLiteStore
from tests.unit import circuit_tasks
from tests.unit.circuit_tasks import reject_customer, sync_customer

T0 = 1_700_000_000.0
LEASE_FOR = 30.0

MakeWorker = Callable[..., Worker]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def crm() -> circuit_tasks.Resource:
    return circuit_tasks.reset()


@pytest.fixture
def make_worker(store: SQLiteStore, clock: FakeClock) -> Iterator[MakeWorker]:
    made: list[Worker] = []

    def make(concurrency: int = 8) -> Worker:
        options = WorkerOptions(concurrency=concurrency, lease_for=LEASE_FOR, poll=0.01)
        worker = Worker(store, options, clock=clock)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.executor.shutdown(wait=True)


def events_of(store: SQLiteStore, run_id: str, kind: type[Any]) -> list[Any]:
    return [stored.event for stored in store.history(run_id) if isinstance(stored.event, kind)]


def step_until(worker: Worker, done: Callable[[], bool], what: str) -> None:
    """Step the worker until ``done()``; a bounded number of turns, never a timed wait."""
    for _ in range(2_000):
        if done():
            return
        worker.step(wait=True)
    raise AssertionError(f"the worker never got to: {what}")


def starts(store: SQLiteStore, run_id: str) -> list[tuple[str, int]]:
    return [(e.node, e.attempt) for e in events_of(store, run_id, NodeStarted)]


# --- opening, waiting, the probe, closing ----------------------------------------------------


def test_an_open_circuit_keeps_attempts_queued_until_its_probe_succeeds(
    store: SQLiteStore, clock: FakeClock, make_worker: MakeWorker, crm: circuit_tasks.Resource
) -> None:
    @keel.workflow
    def sync_two(first: str, second: str) -> Any:
        a = sync_customer.options(id="a")(first)
        b = sync_customer.options(id="b")(second)
        return {"a": a, "b": b}

    record = start_run(store, sync_two.spec, {"first": "ada", "second": "bob"}, clock=clock)
    worker = make_worker()

    step_until(worker, lambda: len(events_of(store, record.id, NodeFailed)) == 2, "2 failures")
    assert store.circuits() == [CircuitState("crm", 2, T0 + 60, None, T0)]
    retries = [e for e in events_of(store, record.id, NodeScheduled) if e.attempt == 2]
    assert sorted(e.node for e in retries) == ["a", "b"]

    clock.advance(30)  # past the retries' backoff, still inside the cool-down
    assert all(e.not_before <= clock.now() for e in retries)
    for _ in range(20):
        worker.step(wait=True)
    assert sorted(starts(store, record.id)) == [("a", 1), ("b", 1)]
    assert sorted(crm.calls) == ["ada", "bob"]  # no thread called the resource again
    assert store.leases(record.id) == []
    assert store.ready_count(record.id) == 2
    assert store.circuits() == [CircuitState("crm", 2, T0 + 60, None, T0)]

    crm.up = True
    clock.advance(30)  # the cool-down is over: one probe
    step_until(worker, lambda: len(starts(store, record.id)) == 3, "the probe starting")
    assert store.circuits() == [CircuitState("crm", 2, T0 + 60, T0 + 60 + LEASE_FOR, T0 + 60)]
    assert len(store.leases(record.id)) == 1
    (done,) = worker.run_until_finished([record.id])

    assert (done.status, done.output) == ("succeeded", {"a": "synced ada", "b": "synced bob"})
    assert store.circuits() == []
    events = [stored.event for stored in store.history(record.id)]
    retried = [
        (i, e.node) for i, e in enumerate(events) if isinstance(e, NodeStarted) and e.attempt == 2
    ]
    (probe_at, probe), (rest_at, _) = retried
    (probe_ok,) = [
        i for i, e in enumerate(events) if isinstance(e, NodeSucceeded) and e.node == probe
    ]
    assert probe_at < probe_ok < rest_at, "the probe reports before the other attempt starts"


def test_a_failed_probe_opens_the_circuit_for_another_cooldown(
    store: SQLiteStore, clock: FakeClock, make_worker: MakeWorker, crm: circuit_tasks.Resource
) -> None:
    @keel.workflow
    def sync_two(first: str, second: str) -> Any:
        return {
            "a": sync_customer.options(id="a")(first),
            "b": sync_customer.options(id="b")(second),
        }

    record = start_run(store, sync_two.spec, {"first": "ada", "second": "bob"}, clock=clock)
    worker = make_worker()
    step_until(worker, lambda: len(events_of(store, record.id, NodeFailed)) == 2, "2 failures")

    clock.advance(60)
    step_until(
        worker, lambda: len(events_of(store, record.id, NodeFailed)) == 3, "the probe failing"
    )

    assert store.circuits() == [CircuitState("crm", 3, T0 + 120, None, T0 + 60)]
    assert len(starts(store, record.id)) == 3
    clock.advance(59)
    for _ in range(20):
        worker.step(wait=True)
    assert len(starts(store, record.id)) == 3
    assert len(crm.calls) == 3
    assert store.ready_count(record.id) == 2

    crm.up = True
    clock.advance(1)
    (done,) = worker.run_until_finished([record.id])
    assert done.status == "succeeded"
    assert store.circuits() == []


# --- what counts ------------------------------------------------------------------------------


ONE_FAILURE_OPENS = CircuitPolicy(name="crm", failures=1, cooldown=60)


@pytest.mark.parametrize(
    ("make_node", "counted"),
    [
        pytest.param(lambda c: reject_customer(c), False, id="non-retryable"),
        pytest.param(
            lambda c: sync_customer.options(
                circuit=ONE_FAILURE_OPENS,
                retry=RetryPolicy(never_retry_on=("ConnectionError",)),
            )(c),
            False,
            id="never-retried-type",
        ),
        pytest.param(
            lambda c: sync_customer.options(circuit=ONE_FAILURE_OPENS, retries=0)(c),
            True,
            id="retryable",
        ),
    ],
)
def test_only_errors_that_could_be_retried_count_against_the_circuit(
    store: SQLiteStore,
    clock: FakeClock,
    make_worker: MakeWorker,
    crm: circuit_tasks.Resource,
    make_node: Callable[[str], Any],
    counted: bool,
) -> None:
    @keel.workflow
    def one_call(customer: str) -> Any:
        return make_node(customer)

    record = start_run(store, one_call.spec, {"customer": "ada"}, clock=clock)

    (done,) = make_worker().run_until_finished([record.id])

    assert done.status == "failed"
    assert crm.calls == ["ada"]
    expected = [CircuitState("crm", 1, T0 + 60, None, T0)] if counted else []
    assert store.circuits() == expected


def test_a_success_closes_a_circuit_with_failures_counted(
    store: SQLiteStore, clock: FakeClock, make_worker: MakeWorker, crm: circuit_tasks.Resource
) -> None:
    @keel.workflow
    def one_call(customer: str) -> Any:
        return sync_customer(customer)

    record = start_run(store, one_call.spec, {"customer": "ada"}, clock=clock)
    worker = make_worker()
    step_until(worker, lambda: len(events_of(store, record.id, NodeFailed)) == 1, "1 failure")
    assert store.circuits() == [CircuitState("crm", 1, None, None, T0)]

    crm.up = True
    clock.advance(1)
    (done,) = worker.run_until_finished([record.id])

    assert done.status == "succeeded"
    assert store.circuits() == []


# --- one thread -------------------------------------------------------------------------------


def test_with_one_thread_the_failure_that_opens_the_circuit_starts_nothing_behind_it(
    store: SQLiteStore, clock: FakeClock, make_worker: MakeWorker, crm: circuit_tasks.Resource
) -> None:
    @keel.workflow
    def sync_three(customers: list[str]) -> Any:
        return {
            node: sync_customer.options(id=node)(customers[index])
            for index, node in enumerate(["a", "b", "c"])
        }

    record = start_run(store, sync_three.spec, {"customers": ["ada", "bob", "cy"]}, clock=clock)
    worker = make_worker(concurrency=1)

    step_until(worker, lambda: len(events_of(store, record.id, NodeFailed)) == 2, "2 failures")
    for _ in range(20):
        worker.step(wait=True)

    assert len(starts(store, record.id)) == 2
    assert len(crm.calls) == 2
    assert store.circuits() == [CircuitState("crm", 2, T0 + 60, None, T0)]

"""``keel fork`` on every backend: a new run that reuses what a run that ended recorded
for the nodes before the one forked from, committed with the ``RunForked`` event of the
run forked from (``CreateRun``) in one transaction, so neither exists without the other.

Executions are counted by the tasks themselves (``tests.unit.fork_tasks.EXECUTED``): a
reused node must not run again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keel.engine.events import NodeReused, NodeStarted, RunForked, RunStarted
from keel.errors import ConflictError
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.fork import fork_run
from keel.runtime.runs import RunCache
from keel.runtime.views.audit import verify_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.store import Store
from keel.store.writes import CreateRun, Transition
from tests.contract.conftest import T0
from tests.unit.fork_tasks import EXECUTED, saga


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def worker(store: Store, clock: FakeClock) -> Iterator[Worker]:
    EXECUTED.clear()
    opened = Worker(store, WorkerOptions(poll=0.01), clock=clock)
    yield opened
    opened.close()


def kinds(store: Store, run_id: str, kind: type) -> list[str]:
    return [s.event.node for s in store.history(run_id) if isinstance(s.event, kind)]


def test_a_failed_saga_forked_with_new_input_reuses_its_bookings(
    store: Store, clock: FakeClock, worker: Worker
) -> None:
    failed = start_run(store, saga(), {"city": "Reykjavik"}, clock=clock)
    (done,) = worker.run_until_finished([failed.id])
    assert done.status == "failed"
    assert EXECUTED == {"flight": 1, "hotel": 1, "car": 1, "cancel": 2}

    forked = fork_run(store, failed.id, "car", {"input.city": "Lisbon"}, by="ada", clock=clock)
    assert forked.run is not None
    assert [(s.node, s.action) for s in forked.plan.steps] == [
        ("flight", "reuse"), ("hotel", "reuse"), ("car", "run")]  # fmt: skip
    assert all(s.compensated for s in forked.plan.steps if s.action == "reuse")
    (new,) = worker.run_until_finished([forked.run.id])

    assert new.status == "succeeded"
    # flight and hotel were not executed again; the car was, once
    assert EXECUTED == {"flight": 1, "hotel": 1, "car": 2, "cancel": 2}
    assert new.output == {"car": {"kind": "car", "ref": "car-Lisbon"},
                          "flight": {"kind": "flight", "ref": "flight-Reykjavik"}}  # fmt: skip
    assert kinds(store, new.id, NodeStarted) == ["car"]
    reused = [s for s in store.history(new.id) if isinstance(s.event, NodeReused)]
    assert [(s.event.node, s.event.from_run) for s in reused] == [
        ("flight", failed.id), ("hotel", failed.id)]  # fmt: skip
    source_history = store.history(failed.id)
    for stored in reused:  # each names the event that recorded the output it took
        (origin,) = [s for s in source_history if s.seq == stored.event.from_seq]
        assert origin.event.node == stored.event.node
        assert origin.event.output == stored.event.output  # type: ignore[union-attr]
    (started,) = [s.event for s in store.history(new.id) if isinstance(s.event, RunStarted)]
    assert started.fork == {"run": failed.id, "node": "car", "version": failed.spec_version}
    assert started.input == {"city": "Lisbon"}
    last = source_history[-1].event
    assert last == RunForked(run_id=new.id, node="car", by="ada", version=failed.spec_version)
    assert store.get_run(failed.id).status == "failed"  # forking changes nothing there
    cache = RunCache(store)
    for run_id in (failed.id, new.id):
        chain, mismatches = verify_run(store, store.get_run(run_id), cache.state)
        assert (chain.problems, mismatches) == ((), [])


def test_a_fork_that_fails_does_not_undo_what_the_run_undid_already(
    store: Store, clock: FakeClock, worker: Worker
) -> None:
    failed = start_run(store, saga(), {"city": "Reykjavik"}, clock=clock)
    worker.run_until_finished([failed.id])
    forked = fork_run(store, failed.id, "car", clock=clock)  # the same input: fails again
    assert forked.run is not None
    (new,) = worker.run_until_finished([forked.run.id])

    assert new.status == "failed"
    assert EXECUTED["cancel"] == 2  # the two cancellations of the first run, no more
    assert not [n for n in kinds(store, new.id, NodeStarted) if n.startswith("compensate:")]


def test_a_succeeded_run_can_be_forked_and_its_fork_undoes_what_it_took_over(
    store: Store, clock: FakeClock, worker: Worker
) -> None:
    ok = start_run(store, saga(), {"city": "Lisbon"}, clock=clock)
    worker.run_until_finished([ok.id])
    forked = fork_run(store, ok.id, "hotel", {"input.city": "Reykjavik"}, clock=clock)
    assert forked.run is not None
    assert [(s.node, s.action) for s in forked.plan.steps] == [
        ("flight", "reuse"), ("hotel", "run"), ("car", "run")]  # fmt: skip
    (new,) = worker.run_until_finished([forked.run.id])

    assert new.status == "failed"  # no car in Reykjavik
    assert EXECUTED == {"flight": 1, "hotel": 2, "car": 2, "cancel": 2}
    # the fork undid its own hotel and the flight it reused (the first run never did)
    assert kinds(store, new.id, NodeStarted) == [
        "hotel", "car", "compensate:hotel", "compensate:flight"]  # fmt: skip
    assert store.get_run(ok.id).status == "succeeded"
    assert isinstance(store.history(ok.id)[-1].event, RunForked)


def test_the_fork_and_its_mark_on_the_run_commit_together_or_not_at_all(
    store: Store, clock: FakeClock, worker: Worker
) -> None:
    failed = start_run(store, saga(), {"city": "Reykjavik"}, clock=clock)
    worker.run_until_finished([failed.id])
    done = store.get_run(failed.id)
    other = start_run(store, saga(), {"city": "Oslo"}, clock=clock)  # a first transition
    history = store.history(other.id)
    first = Transition("f" * 32, 0, T0, [history[0].event])
    stale = Transition(done.id, done.last_seq - 1, T0,
                       [RunForked(run_id="f" * 32, node="car", by="x", version="v")],
                       [CreateRun(saga(), {"city": "Oslo"}, first)])  # fmt: skip

    (result,) = store.commit([stale])
    assert isinstance(result.error, ConflictError)
    assert "f" * 32 not in {r.id for r in store.list_runs()}
    assert store.history(done.id)[-1].seq == done.last_seq  # nothing was appended

    fresh = Transition(done.id, done.last_seq, T0, stale.events, stale.writes,
                       expected_head=done.head_hash)  # fmt: skip
    (result,) = store.commit([fresh])
    assert result.error is None
    created = store.get_run("f" * 32)
    assert (created.workflow, created.input) == ("saga", {"city": "Oslo"})
    assert store.history(done.id)[-1].event == stale.events[0]

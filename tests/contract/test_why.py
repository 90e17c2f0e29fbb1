"""Why a run is not progressing (``keel why``), on each backend: one test per reason a
node can give, each asserting the kind and its data. Runs are moved by hand (``Driver``)
and every time is explicit: the reasons are worked out at a given ``now``, no clock is
read and nothing sleeps."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from keel.engine import ErrorInfo, NodeFailed, compile_plan
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import pause_run
from keel.runtime.runs import RunCache
from keel.runtime.views.why import run_why
from keel.runtime.views.why_reasons import (
    AvailableLater,
    CircuitOpen,
    ConcurrencyFull,
    GaveBack,
    Holder,
    LeaseHolderGone,
    MapParallelFull,
    NoCode,
    NodeWhy,
    NoLiveWorker,
    Paused,
    Queued,
    RateLimited,
    RetryBackoff,
    RunFailing,
    Running,
    RunParallelFull,
    RunWhy,
    Stalled,
    WaitsForApproval,
    WaitsForChildRun,
    WaitsForParents,
    WaitsForSignal,
    WaitsForTimer,
)
from keel.runtime.worker.missing_code import FIRST_DELAY
from keel.runtime.worker.transitions import given_back
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store import Store, WorkerRecord
from keel.store.sqlite import SQLiteStore
from keel.store.writes import Enqueue
from tests.contract.conftest import (
    T0,
    Driver,
    circuit_opened,
    make_spec,
    map_spec,
    raw_sql,
    with_enqueued,
)

#: a worker's lease owner as workers write it (``host:pid:start:token``)
OWNER = "h1:101:77:aa"


def why(store: Store, run_id: str, now: float) -> RunWhy:
    record = store.get_run(run_id)
    return run_why(store, record, compile_plan(store.load_spec(record.spec_version)), now)


def node_why(store: Store, run_id: str, node: str, now: float, item: int | None = None) -> NodeWhy:
    found = why(store, run_id, now)
    (entry,) = [n for n in found.nodes if n.node == node and n.item == item]
    return entry


def one(name: str, node: dict[str, Any], **spec: Any) -> WorkflowSpec:
    """A workflow of one node ``a`` with these fields."""
    return parse_spec({"name": name, "nodes": [{"id": "a", "task": "m:f", **node}], **spec})


def register(store: Store, owner: str = OWNER, *, queues: tuple[str, ...] | None = ("default",),
             at: float = T0, runs: tuple[str, ...] | None = None) -> None:  # fmt: skip
    host, pid, _, _ = owner.split(":")
    store.register_worker(WorkerRecord(owner, host, int(pid), queues, at, at, runs))


# --- waiting inside the run -----------------------------------------------------------------


def test_a_node_waits_for_its_parents(store: Store) -> None:
    Driver(store, make_spec()).start()

    entry = node_why(store, "run-1", "b", T0)

    assert (entry.status, entry.reason) == ("waiting", WaitsForParents(parents=["a"]))
    assert not entry.stuck


def test_a_node_waits_for_the_runs_max_parallel(store: Store) -> None:
    nodes = [{"id": "a", "task": "m:f"}, {"id": "b", "task": "m:f"}]
    spec = parse_spec({"name": "two", "max_parallel": 1, "nodes": nodes})
    Driver(store, spec).start()

    assert node_why(store, "run-1", "b", T0).reason == RunParallelFull(limit=1, out=1)


def test_a_maps_items_wait_for_its_max_parallel(store: Store) -> None:
    Driver(store, map_spec(max_parallel=1), run_input={"items": [1, 2, 3]}).start()

    found = why(store, "run-1", T0)

    assert [(n.node, n.item, n.reason.kind) for n in found.nodes] == [
        ("fan", 0, "no_worker"), ("fan", None, "map_parallel")]  # fmt: skip
    assert found.nodes[1].reason == MapParallelFull(limit=1, out=1, left=2)


def test_a_node_of_a_failing_run_will_not_start(store: Store) -> None:
    spec = parse_spec({"name": "failing", "on_failure": {"task": "m:alert"}, "nodes": [
        {"id": "a", "task": "m:f"}, {"id": "b", "task": "m:f"},
        {"id": "c", "task": "m:f", "after": ["b"]}]})  # fmt: skip
    driver = Driver(store, spec)
    driver.start()
    held = {claimed.lease.node: claimed.lease for claimed in driver.claim()}
    driver.fail(held["a"], "no stock")

    entry = node_why(store, "run-1", "c", driver.now)

    assert entry.reason.kind == "run_failing"
    assert isinstance(entry.reason, RunFailing)
    assert entry.reason.node == "a"


# --- waiting for something outside the run ----------------------------------------------------


def test_an_approval_waits_for_a_decision_until_its_due_time(store: Store) -> None:
    Driver(store, parse_spec({"name": "ok", "nodes": [
        {"id": "check", "kind": "approval", "title": "Check it", "assignees": ["finance"],
         "timeout": 3600}]})).start()  # fmt: skip

    entry = node_why(store, "run-1", "check", T0 + 5)

    assert entry.reason == WaitsForApproval(title="Check it", assignees=["finance"], role=None,
                                            since=T0, due=T0 + 3600)  # fmt: skip
    assert entry.stuck


def test_a_timer_waits_until_its_time(store: Store) -> None:
    Driver(store, parse_spec({"name": "later", "nodes": [
        {"id": "nap", "kind": "timer", "duration": 600}]})).start()  # fmt: skip

    assert node_why(store, "run-1", "nap", T0).reason == WaitsForTimer(until=T0 + 600)


def test_a_signal_node_waits_for_its_signal_until_its_timeout(store: Store) -> None:
    Driver(store, parse_spec({"name": "pinged", "nodes": [
        {"id": "hear", "kind": "signal", "signal": "ping", "timeout": 300}]})).start()  # fmt: skip

    reason = node_why(store, "run-1", "hear", T0).reason
    assert reason == WaitsForSignal(name="ping", since=T0, timeout_at=T0 + 300)


def test_a_subworkflow_node_waits_for_its_child_run(store: Store) -> None:
    child = make_spec("child")
    store.save_spec(child, T0)
    parent = parse_spec(
        {
            "name": "parent",
            "nodes": [
                {"id": "sub", "kind": "subworkflow", "workflow": "child", "version": child.version}
            ],
        }
    )
    run_id = start_run(store, parent, {}, clock=FakeClock(T0)).id  # starts the child run
    (child_run,) = store.list_runs(parent=run_id)

    reason = node_why(store, run_id, "sub", T0).reason

    assert reason == WaitsForChildRun(run_id=child_run.id, workflow="child", status="running")


# --- attempts on the ready queue ----------------------------------------------------------------


def test_a_retry_waits_for_its_backoff(store: Store) -> None:
    retry = {"max_attempts": 3, "initial_backoff": 10, "jitter": 0}
    driver = Driver(store, one("flaky", {"retry": retry}))
    driver.start()
    (claimed,) = driver.claim()
    error = ErrorInfo(type="Boom", message="flaky", retryable=True)
    driver.commit(driver.step([NodeFailed(node="a", attempt=1, error=error)], (claimed.lease,)))
    failed_at = driver.now

    entry = node_why(store, "run-1", "a", failed_at + 1)

    assert entry.reason == RetryBackoff(until=failed_at + 10, attempt=2, max_attempts=3,
                                        error="Boom: flaky")  # fmt: skip


def test_a_full_concurrency_key_names_its_holders(store: Store) -> None:
    spec = one("crm", {"concurrency": {"key": "'crm'", "limit": 1}})
    first, second = Driver(store, spec, "r1"), Driver(store, spec, "r2")
    first.start()
    second.start()
    first.claim(OWNER)

    entry = node_why(store, "r2", "a", T0 + 2)

    assert entry.reason == ConcurrencyFull(key="crm", limit=1, holders=[
        Holder(run_id="r1", node="a", item=None, owner=OWNER)])  # fmt: skip
    assert [reason.kind for reason in entry.also] == ["no_worker"]  # and no worker for it


def test_a_rate_limited_attempt_says_when_the_next_start_is_allowed(store: Store) -> None:
    spec = one("api", {"rate_limit": {"key": "'api'", "limit": 1, "per": 60}})
    first, second = Driver(store, spec, "r1"), Driver(store, spec, "r2")
    first.start()
    second.start()
    started_at = first.tick()
    assert store.claim(OWNER, 10, started_at, 30.0)  # r1 starts; r2 is over the rate

    reason = node_why(store, "r2", "a", started_at + 1).reason

    assert reason == RateLimited(key="api", limit=1, per=60.0, until=started_at + 60)


def test_an_open_circuit_says_until_when(store: Store) -> None:
    spec = one("calls", {"circuit": "crm"})
    first = circuit_opened(store, spec, OWNER)

    reason = node_why(store, "r2", "a", first.now + 1).reason

    assert reason == CircuitOpen(circuit="crm", until=first.now + 60, failures=1,
                                 probe_until=None)  # fmt: skip


def test_a_paused_run_says_who_paused_it_and_since_when(store: Store) -> None:
    Driver(store, make_spec()).start()
    pause_run(store, "run-1", reason="checking", by="ops", clock=FakeClock(T0 + 5))

    found = why(store, "run-1", T0 + 6)

    paused = Paused(by="ops", since=T0 + 5, reason="checking")
    assert (found.status, found.paused) == ("paused", paused)
    assert found.nodes[0].reason == paused
    assert found.nodes[1].reason == WaitsForParents(parents=["a"])


def test_a_run_no_worker_takes_is_queued_with_no_live_worker(store: Store) -> None:
    Driver(store, make_spec()).start()
    register(store, "h2:202:1:bb", queues=("special",), at=T0 + 40)  # live, another queue
    register(store, "h3:303:1:cc", runs=("other-run",), at=T0 + 40)  # live, other runs only

    entry = node_why(store, "run-1", "a", T0 + 45)

    assert (entry.status, entry.stuck) == ("scheduled", True)
    assert entry.reason == NoLiveWorker(queue="default", since=T0, for_seconds=45.0,
                                        last_seen=None)  # fmt: skip


def test_no_live_worker_counts_from_when_the_last_one_was_seen(store: Store) -> None:
    Driver(store, make_spec()).start()
    register(store, at=T0 + 10)  # listed, then no longer seen (killed)

    reason = node_why(store, "run-1", "a", T0 + 100).reason

    assert reason == NoLiveWorker(queue="default", since=T0, for_seconds=90.0,
                                  last_seen=T0 + 10)  # fmt: skip


def test_a_worker_that_stopped_cleanly_is_not_known_to_have_been(store: Store) -> None:
    """A worker that stops removes its row: that one took the queue a minute ago is not
    known, so the reason claims nothing about it (its words: ``keel why``)."""
    Driver(store, make_spec()).start()
    register(store, at=T0 + 10)
    store.worker_seen(OWNER, T0 + 60)
    store.unregister_worker(OWNER)  # it stopped cleanly

    reason = node_why(store, "run-1", "a", T0 + 100).reason

    assert reason == NoLiveWorker(queue="default", since=T0, for_seconds=100.0,
                                  last_seen=None)  # fmt: skip


@pytest.mark.parametrize("worker", [
    pytest.param({"queues": None}, id="every-queue"),
    pytest.param({"queues": ("default", "other")}, id="its-queue"),
    pytest.param({"runs": ("run-1",)}, id="keel-run-of-this-run"),
])  # fmt: skip
def test_a_queued_attempt_with_a_live_worker_is_just_queued(
    store: Store, worker: dict[str, Any]
) -> None:
    Driver(store, make_spec()).start()
    register(store, "h3:303:1:cc", at=T0 + 10, **worker)

    entry = node_why(store, "run-1", "a", T0 + 20)

    assert (entry.reason, entry.also, entry.stuck) == (
        Queued(queue="default", since=T0), [], False)  # fmt: skip


def test_an_attempt_on_a_live_worker_is_running(store: Store) -> None:
    driver = Driver(store, make_spec())
    driver.start()
    register(store)
    driver.claim(OWNER, lease_for=30.0)
    store.worker_seen(OWNER, T0 + 20)

    entry = node_why(store, "run-1", "a", T0 + 25)

    assert entry.reason == Running(owner=OWNER, since=driver.now, lease_expires=driver.now + 30)
    assert (entry.status, entry.stuck) == ("running", False)


def test_an_attempt_leased_to_a_worker_that_stopped_heartbeating(store: Store) -> None:
    driver = Driver(store, make_spec())
    driver.start()
    register(store)  # seen at T0, never again
    (claimed,) = driver.claim(OWNER, lease_for=300.0)

    entry = node_why(store, "run-1", "a", T0 + 60)  # the lease has not expired yet

    assert entry.reason == LeaseHolderGone(owner=OWNER, last_seen=T0,
                                           lease_expires=claimed.lease.expires_at)  # fmt: skip
    assert entry.stuck


def test_an_expired_lease_of_a_worker_never_listed_is_a_dead_holder(store: Store) -> None:
    driver = Driver(store, make_spec())
    driver.start()
    (claimed,) = driver.claim("ghost:1:1:zz", lease_for=30.0)

    live = node_why(store, "run-1", "a", driver.now + 10).reason
    expired = node_why(store, "run-1", "a", driver.now + 60).reason

    assert live.kind == "running"  # not listed: judged by its lease alone
    assert expired == LeaseHolderGone(owner="ghost:1:1:zz", last_seen=None,
                                      lease_expires=claimed.lease.expires_at)  # fmt: skip


def test_an_attempt_available_later_for_another_cause_says_when(store: Store) -> None:
    """Queued for later by something its history does not name: not a retry."""
    driver = Driver(store, make_spec())
    transition = driver.first()
    (ready,) = [write.ready for write in transition.writes if isinstance(write, Enqueue)]
    later = dataclasses.replace(ready, available_at=T0 + 60)
    store.create_run(driver.spec, {}, with_enqueued(transition, [later]))
    register(store, at=T0 + 5)

    entry = node_why(store, "run-1", "a", T0 + 10)

    assert entry.reason == AvailableLater(queue="default", since=T0, at=T0 + 60)
    assert (entry.also, entry.stuck) == ([], True)


def test_queued_since_is_never_after_now(store: Store) -> None:
    """The history's times are the writers' clocks: one ahead of the reader's is not
    said as a time to come (when the attempt may be taken is the queue's own)."""
    Driver(store, make_spec()).start()
    register(store, at=T0)

    reason = node_why(store, "run-1", "a", T0 - 5).reason

    assert reason == AvailableLater(queue="default", since=T0 - 5, at=T0)


# --- given back by workers without the task's code -------------------------------------------


def give_back(driver: Driver, owner: str) -> float:
    """``owner`` claims the attempt and, having no code for its task, gives it back as a
    worker does (``keel.runtime.worker.missing_code``); when it is available again."""
    (claimed,) = driver.claim(owner)
    history = driver.store.history(driver.run_id)
    transition, again = given_back(history, driver.state(), claimed.lease, "m:f", "no module m",
                                   now=driver.tick(), code_wait=300.0,
                                   cache=RunCache(driver.store))  # fmt: skip
    driver.commit(transition)
    assert again is not None
    driver.now = again
    return again


def test_an_attempt_workers_gave_back_for_want_of_code_says_so(store: Store) -> None:
    driver = Driver(store, one("gpu", {"queue": "gpu"}))
    driver.start()
    register(store, queues=("gpu",))  # the worker without the code, live
    first_at = driver.now + 1  # its claim, then its give-back, a tick each
    give_back(driver, OWNER)
    again = give_back(driver, OWNER)
    store.worker_seen(OWNER, again - 1)

    early = node_why(store, "run-1", "a", again - 0.5)
    due = node_why(store, "run-1", "a", again + 1)

    gave = [GaveBack(owner=OWNER, times=2)]
    assert early.reason == NoCode(task="m:f", queue="gpu", workers=gave, since=first_at,
                                  next_try=again)  # fmt: skip
    assert (early.also, early.stuck) == ([], True)  # not a retry's backoff, nor "queued"
    # available again: still said, as the next worker may lack the code as well
    assert due.reason == NoCode(task="m:f", queue="gpu", workers=gave, since=first_at,
                                next_try=None)  # fmt: skip


def test_each_worker_that_gave_an_attempt_back_is_named(store: Store) -> None:
    driver = Driver(store, one("gpu", {"queue": "gpu"}))
    driver.start()
    give_back(driver, OWNER)
    give_back(driver, "h2:202:1:bb")
    again = give_back(driver, OWNER)

    entry = node_why(store, "run-1", "a", again - 0.1)

    assert isinstance(entry.reason, NoCode)
    assert entry.reason.workers == [GaveBack(owner=OWNER, times=2),
                                    GaveBack(owner="h2:202:1:bb", times=1)]  # fmt: skip
    assert entry.reason.next_try == again
    assert again - entry.reason.since > FIRST_DELAY  # counted from the first give-back
    assert [reason.kind for reason in entry.also] == ["no_worker"]  # none is listed


# --- the run as a whole ------------------------------------------------------------------------


def test_an_ended_run_has_nothing_holding_it(store: Store) -> None:
    driver = Driver(store, make_spec())
    driver.start()
    driver.cancel()

    found = why(store, "run-1", T0 + 10)

    assert (found.status, found.nodes, found.paused) == ("cancelled", [], None)


def test_an_attempt_missing_from_the_queue_is_stalled(sqlite_store: SQLiteStore,
                                                      tmp_path: Path) -> None:  # fmt: skip
    Driver(sqlite_store, make_spec()).start()
    raw_sql(tmp_path / "keel.db", "DELETE FROM ready WHERE run_id = 'run-1'")

    reason = node_why(sqlite_store, "run-1", "a", T0).reason

    assert reason == Stalled(detail="its attempt is not on the ready queue")


def test_the_reasons_read_the_same_as_json(store: Store) -> None:
    """The document the API sends parses back into the same reasons (the HTTP client)."""
    spec = one("crm", {"concurrency": {"key": "'crm'", "limit": 1}})
    Driver(store, spec, "r1").start()
    Driver(store, spec, "r2").start()
    Driver(store, spec, "r1").claim(OWNER)
    found = why(store, "r2", T0 + 2)

    document = found.model_dump(mode="json")

    assert RunWhy.model_validate(document) == found
    assert document["nodes"][0]["reason"] == {
        "kind": "concurrency", "key": "crm", "limit": 1,
        "holders": [{"run_id": "r1", "node": "a", "item": None, "owner": OWNER}]}  # fmt: skip
    assert document["nodes"][0]["stuck"] is True


def dead_owner_here() -> str:
    """The lease owner of a process of this host that has ended (as a SIGKILLed
    worker's is): its pid no longer runs."""
    import socket
    import subprocess
    import sys

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return f"{socket.gethostname()}:{done.pid}:1:dd"


def test_a_worker_killed_on_this_host_is_dead_at_once(store: Store) -> None:
    """Its row says it was seen a moment ago, but its process is gone: the attempt it
    holds has a dead holder, and its queue no live worker, now, not 30 s later."""
    owner = dead_owner_here()
    held, queued = Driver(store, make_spec()), Driver(store, make_spec(), run_id="run-2")
    held.start()
    queued.start()
    register(store, owner, at=T0)
    (claimed,) = held.claim(owner, lease_for=300.0)
    store.worker_seen(owner, held.now)

    assert node_why(store, "run-1", "a", held.now + 1).reason == LeaseHolderGone(
        owner=owner, last_seen=held.now, lease_expires=claimed.lease.expires_at)  # fmt: skip
    reason = node_why(store, "run-2", "a", held.now + 1).reason
    assert reason.kind == "no_worker"
    assert reason.last_seen == held.now  # type: ignore[union-attr]

"""The worker loop on a real SQLite store: runs to completion, concurrency limits, lease
reclaim, outcomes whose lease was lost, giving leases back, failures, and the run report.

Tasks live in ``tests.unit.runtime_tasks`` and coordinate with the tests through its
``probe`` (events and a barrier, each wait with a deadline)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from keel.engine.events import (
    LateResultDiscarded,
    NodeFailed,
    NodeReclaimed,
    NodeScheduled,
    NodeStarted,
    NodeSucceeded,
    RunCancelled,
    RunFailed,
)
from keel.engine.plan import compile_plan
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import cancel_run, start_run
from keel.runtime.owner import Owner
from keel.runtime.views.report import run_report
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import WorkflowSpec, parse_spec
from keel.store.records import RunRecord, StoredEvent
from keel.store.sqlite import SQLiteStore
from tests.unit import runtime_tasks

TASKS = "tests.unit.runtime_tasks"

MakeWorker = Callable[..., Worker]


def spec_of(nodes: list[dict[str, Any]], **fields: Any) -> WorkflowSpec:
    for node in nodes:
        node["task"] = f"{TASKS}:{node['task']}"
    return parse_spec({"name": "w", "nodes": nodes, **fields})


def events_of(store: SQLiteStore, run_id: str, kind: type[Any]) -> list[Any]:
    return [stored.event for stored in store.history(run_id) if isinstance(stored.event, kind)]


@pytest.fixture
def probe() -> Iterator[runtime_tasks.Probe]:
    current = runtime_tasks.reset()
    yield current
    current.release.set()  # never leave a task blocked
    current.barrier.abort()


@pytest.fixture
def make_worker(store: SQLiteStore) -> Iterator[MakeWorker]:
    made: list[Worker] = []

    def make(*args: Any, **kwargs: Any) -> Worker:
        worker = Worker(store, *args, **kwargs)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.executor.shutdown(wait=True)


def dead_owner() -> str:
    """An owner on this host whose process has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return str(Owner(socket.gethostname(), proc.pid, "12345", "dead00"))


RunInThread = Callable[[Worker, str], tuple[threading.Thread, list[RunRecord]]]


@pytest.fixture
def run_in_thread(make_worker: MakeWorker) -> Iterator[RunInThread]:
    """``worker.run_until_finished([run_id])`` in a thread, stopped (and joined, before
    the store closes) when the test ends, even if it failed."""
    stop = threading.Event()
    started: list[threading.Thread] = []

    def start(worker: Worker, run_id: str) -> tuple[threading.Thread, list[RunRecord]]:
        records: list[RunRecord] = []
        thread = threading.Thread(
            target=lambda: records.extend(worker.run_until_finished([run_id], stop)),
            daemon=True,
        )
        thread.start()
        started.append(thread)
        return thread, records

    yield start
    stop.set()
    runtime_tasks.probe.release.set()
    for thread in started:
        thread.join(timeout=10)


# --- running to completion --------------------------------------------------------------------


def test_a_run_completes_and_the_observer_sees_every_event_once_in_order(
    store: SQLiteStore, make_worker: MakeWorker
) -> None:
    spec = spec_of(
        [
            {"id": "a", "task": "total", "args": {"values": "${{ input.values }}"}},
            {"id": "b", "task": "echo", "args": {"value": "${{ nodes.a.output * 2 }}"}},
            {"id": "c", "task": "make_claim", "args": {"claim_id": "${{ input.id }}"}},
            {
                "id": "d",
                "task": "echo",
                "after": ["b", "c"],
                "args": {"value": "${{ [nodes.b.output, nodes.c.output.id] }}"},
            },
        ],
        outputs={"d": "nodes.d.output", "c": "nodes.c.output"},
    )
    record = start_run(store, spec, {"values": [1, 2, 3], "id": "c-7"})
    observed: list[StoredEvent] = []
    worker = make_worker(observer=observed.extend)

    (done,) = worker.run_until_finished([record.id])

    assert done.status == "succeeded"
    assert done.output == {"d": [12, "c-7"], "c": {"id": "c-7", "amount": 2.5}}
    history = store.history(record.id)
    assert observed == [stored for stored in history if stored.seq > record.last_seq]
    seqs = [stored.seq for stored in observed]
    assert seqs == list(range(record.last_seq + 1, history[-1].seq + 1))
    assert {event.node for event in events_of(store, record.id, NodeSucceeded)} == set("abcd")
    assert store.leases(record.id) == []
    assert store.ready_count(record.id) == 0


def test_several_runs_complete_together(store: SQLiteStore, make_worker: MakeWorker) -> None:
    spec = spec_of(
        [{"id": "a", "task": "echo", "args": {"value": "${{ input.n }}"}}],
        outputs={"n": "nodes.a.output"},
    )
    runs = [start_run(store, spec, {"n": n}).id for n in range(3)]
    records = make_worker().run_until_finished(runs)
    assert [(r.id, r.status, r.output) for r in records] == [
        (run, "succeeded", {"n": n}) for n, run in enumerate(runs)
    ]


class TellsTimeOnly:
    """A caller's own clock that only tells the time, as clocks did before pacing and
    waiting became the clock's job."""

    def __init__(self) -> None:
        self.asked = 0

    def now(self) -> float:
        self.asked += 1
        return 1_700_000_000.0 + self.asked


def test_a_clock_that_only_tells_the_time_still_drives_a_worker(
    store: SQLiteStore, make_worker: MakeWorker
) -> None:
    spec = spec_of(
        [{"id": "a", "task": "echo", "args": {"value": "${{ input.n }}"}}],
        outputs={"n": "nodes.a.output"},
    )
    clock = TellsTimeOnly()
    record = start_run(store, spec, {"n": 5}, clock=clock)
    (done,) = make_worker(clock=clock).run_until_finished([record.id])

    assert (done.status, done.output) == ("succeeded", {"n": 5})
    # every record carries the caller's time, not this host's
    times = [stored.at for stored in store.history(record.id)]
    assert all(1_700_000_000.0 < at < 1_700_000_100.0 for at in times), times


def test_a_run_started_by_a_worker_begins_without_a_claim(
    store: SQLiteStore, make_worker: MakeWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Worker.start_run`` leases the first attempts in the run's first transaction."""
    spec = spec_of(
        [
            {"id": "a", "task": "echo", "args": {"value": "${{ input.n }}"}},
            {"id": "b", "task": "echo", "args": {"value": "${{ nodes.a.output + 1 }}"}},
            {"id": "c", "task": "echo", "args": {"value": "${{ nodes.a.output + 2 }}"}},
        ],
        outputs={"b": "nodes.b.output", "c": "nodes.c.output"},
    )
    worker = make_worker(WorkerOptions(concurrency=1))
    claims: list[int] = []
    real_claim = store.claim
    monkeypatch.setattr(
        store, "claim", lambda *a, **k: claims.append(len(found := real_claim(*a, **k))) or found
    )

    run_id = worker.start_run(spec, {"n": 1})
    (done,) = worker.run_until_finished([run_id])

    assert (done.status, done.output) == ("succeeded", {"b": 2, "c": 3})
    kinds = [type(stored.event).__name__ for stored in store.history(run_id)[:4]]
    assert kinds == ["RunStarted", "NodeScheduled", "NodeStarted", "NodeSucceeded"]
    # concurrency 1: a's outcome leased b and queued c, b's outcome leased c: every
    # attempt was leased by the transition before it, and no claim ever found work
    assert sum(claims) == 0
    started = [
        (s.seq, s.event.node) for s in store.history(run_id) if isinstance(s.event, NodeStarted)
    ]
    assert [node for _, node in started] == ["a", "b", "c"]


def test_map_items_and_async_tasks_run_with_their_own_context(
    store: SQLiteStore, make_worker: MakeWorker
) -> None:
    spec = spec_of(
        [
            {
                "id": "fan",
                "kind": "map",
                "task": "with_context",
                "items": "input.items",
                "item_arg": "n",
            },
            {
                "id": "plus_one",
                "task": "async_add",
                "args": {"a": "${{ size(nodes.fan.output) }}", "b": 10},
            },
        ],
        outputs={"keys": "nodes.fan.output.map(r, r.key)", "sum": "nodes.plus_one.output"},
    )
    record = start_run(store, spec, {"items": [5, 6, 7]})

    (done,) = make_worker().run_until_finished([record.id])

    assert done.status == "succeeded", done.reason
    assert done.output == {
        "keys": [f"{record.id}:fan[{index}]:1" for index in range(3)],
        "sum": 14,
    }
    fan = run_report(compile_plan(spec), store.history(record.id)).nodes["fan"]
    # each item succeeded first time: 1 attempt (the highest of any item), no retries
    assert (fan.status, fan.items, fan.items_done, fan.attempts, fan.retries) == (
        "succeeded", 3, 3, 1, 0)  # fmt: skip


def test_an_async_task_over_the_nodes_timeout_fails_the_run(
    store: SQLiteStore, make_worker: MakeWorker
) -> None:
    spec = spec_of([{"id": "sleepy", "task": "async_sleep", "timeout": 0.05}])
    record = start_run(store, spec, {})

    (done,) = make_worker().run_until_finished([record.id])

    assert done.status == "failed"
    (failed,) = events_of(store, record.id, NodeFailed)
    assert (failed.node, failed.error.type, failed.error.retryable) == (
        "sleepy", "TimeoutError", True
    )  # fmt: skip


def test_a_thread_over_its_timeout_fails_and_what_it_returns_later_is_recorded_as_discarded(
    store: SQLiteStore, make_worker: MakeWorker
) -> None:
    spec = spec_of([{"id": "slow", "task": "overrun", "args": {"seconds": 0.5}, "timeout": 0.05}])
    record = start_run(store, spec, {})

    # the worker waits up to late_grace for the thread, once the run has ended
    (done,) = make_worker(WorkerOptions(late_grace=30)).run_until_finished([record.id])

    assert done.status == "failed"
    (failed,) = events_of(store, record.id, NodeFailed)
    assert (failed.node, failed.error.type) == ("slow", "TimeoutError")
    (late,) = events_of(store, record.id, LateResultDiscarded)
    assert (late.node, late.attempt, late.outcome) == ("slow", 1, "succeeded")


def test_two_workers_share_a_run_and_record_each_event_once(
    store: SQLiteStore,
    make_worker: MakeWorker,
    run_in_thread: RunInThread,
    probe: runtime_tasks.Probe,
) -> None:
    names = [f"n{index}" for index in range(12)]
    nodes = [{"id": name, "task": "counted", "args": {"name": name}} for name in names]
    nodes.append({"id": "last", "task": "echo", "after": names, "args": {"value": "end"}})
    record = start_run(store, spec_of(nodes, outputs={"last": "nodes.last.output"}), {})
    observed: list[StoredEvent] = []
    lock = threading.Lock()

    def observe(events: list[StoredEvent]) -> None:
        with lock:
            observed.extend(events)

    workers = [make_worker(WorkerOptions(concurrency=2), observer=observe) for _ in range(2)]
    threads = [run_in_thread(worker, record.id) for worker in workers]
    for thread, _ in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()

    for _, records in threads:
        assert [(r.status, r.output) for r in records] == [("succeeded", {"last": "end"})]
    history = store.history(record.id)
    assert sorted(observed, key=lambda stored: stored.seq) == history[record.last_seq :]
    succeeded = [event.node for event in events_of(store, record.id, NodeSucceeded)]
    assert sorted(succeeded) == sorted([*names, "last"])
    assert sorted(probe.calls) == sorted(names)


# --- concurrency ------------------------------------------------------------------------------


def test_the_worker_runs_at_most_its_concurrency_at_once(
    store: SQLiteStore, make_worker: MakeWorker, probe: runtime_tasks.Probe
) -> None:
    names = [f"n{index}" for index in range(6)]
    spec = spec_of([{"id": name, "task": "paired", "args": {"name": name}} for name in names])
    record = start_run(store, spec, {})

    (done,) = make_worker(WorkerOptions(concurrency=2)).run_until_finished([record.id])

    assert done.status == "succeeded", done.reason
    assert sorted(probe.calls) == sorted(names)
    assert probe.peak == 2


def test_outcomes_that_finish_together_are_recorded_in_one_commit(
    store: SQLiteStore,
    make_worker: MakeWorker,
    probe: runtime_tasks.Probe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``first`` finishes at once; the three others only once the worker has taken
    ``first``'s outcome, so without gathering ``first`` would be committed alone."""
    spec = spec_of(
        [{"id": "first", "task": "counted", "args": {"name": "first"}}]
        + [{"id": f"n{i}", "task": "blocking", "args": {"name": f"n{i}"}} for i in range(3)]
    )
    record = start_run(store, spec, {})
    worker = make_worker(WorkerOptions(concurrency=4, gather=30.0))
    outcomes = worker.outcomes.inbox

    class ReleasingQueue:
        """The worker's outcome queue; taking an outcome releases the blocked tasks."""

        put = outcomes.put

        def get(self, timeout: float | None = None) -> Any:
            found = outcomes.get(timeout=timeout)
            probe.release.set()
            return found

        def get_nowait(self) -> Any:
            found = outcomes.get_nowait()
            probe.release.set()
            return found

    monkeypatch.setattr(worker.outcomes, "inbox", ReleasingQueue())
    batches: list[list[str]] = []
    real_commit = store.commit

    def commit(transitions: Any) -> Any:
        batches.append(sorted(t.events[0].node for t in transitions))  # the outcome's node
        return real_commit(transitions)

    monkeypatch.setattr(store, "commit", commit)

    (done,) = worker.run_until_finished([record.id])

    assert done.status == "succeeded", done.reason
    assert batches == [["first", "n0", "n1", "n2"]]


def test_gathering_does_not_hold_an_outcome_while_others_still_run(
    store: SQLiteStore, make_worker: MakeWorker, probe: runtime_tasks.Probe
) -> None:
    spec = spec_of(
        [
            {"id": "slow", "task": "blocking", "args": {"name": "slow"}},
            {"id": "fast", "task": "counted", "args": {"name": "fast"}},
        ]
    )
    record = start_run(store, spec, {})
    worker = make_worker(WorkerOptions(concurrency=2, gather=0.01))
    worker.step()
    assert probe.started.wait(timeout=10)

    for _ in range(1000):  # each step waits at most ``poll`` for an outcome
        worker.step(wait=True)
        if events_of(store, record.id, NodeSucceeded):
            break
    (succeeded,) = events_of(store, record.id, NodeSucceeded)

    assert succeeded.node == "fast"
    assert probe.running == 1  # slow is still running: fast did not wait for it
    probe.release.set()
    worker.drain()


def test_the_workflows_max_parallel_holds_whatever_the_concurrency(
    store: SQLiteStore, make_worker: MakeWorker, probe: runtime_tasks.Probe
) -> None:
    names = [f"n{index}" for index in range(5)]
    spec = spec_of(
        [{"id": name, "task": "counted", "args": {"name": name}} for name in names],
        max_parallel=1,
    )
    record = start_run(store, spec, {})

    (done,) = make_worker(WorkerOptions(concurrency=8)).run_until_finished([record.id])

    assert done.status == "succeeded", done.reason
    assert sorted(probe.calls) == sorted(names)
    assert probe.peak == 1
    out = 0
    for stored in store.history(record.id):
        if isinstance(stored.event, NodeScheduled):
            out += 1
        elif isinstance(stored.event, NodeSucceeded | NodeFailed):
            out -= 1
        assert out <= 1


# --- lease reclaim ----------------------------------------------------------------------------


def test_an_attempt_held_by_a_dead_process_is_reclaimed_at_once(
    store: SQLiteStore, make_worker: MakeWorker
) -> None:
    spec = spec_of(
        [{"id": "a", "task": "echo", "args": {"value": "done"}}], outputs={"a": "nodes.a.output"}
    )
    record = start_run(store, spec, {})
    owner = dead_owner()
    (claimed,) = store.claim(owner, 1, time.time(), 3600)
    assert claimed.lease.owner == owner

    (done,) = make_worker().run_until_finished([record.id])

    assert done.status == "succeeded"
    assert done.output == {"a": "done"}
    (reclaimed,) = events_of(store, record.id, NodeReclaimed)
    assert (reclaimed.node, reclaimed.attempt, reclaimed.owner) == ("a", 1, owner)
    assert reclaimed.reason == "owner died"
    starts = events_of(store, record.id, NodeStarted)
    assert [(start.attempt, start.worker == owner) for start in starts] == [(1, True), (1, False)]
    node = run_report(compile_plan(spec), store.history(record.id)).nodes["a"]
    assert (node.status, node.attempts, node.reclaimed) == ("succeeded", 1, 1)


def test_an_attempt_held_on_another_host_waits_for_its_lease_to_expire(
    store: SQLiteStore, make_worker: MakeWorker
) -> None:
    clock = FakeClock()
    spec = spec_of([{"id": "a", "task": "echo", "args": {"value": 1}}])
    record = start_run(store, spec, {}, clock=clock)
    elsewhere = "another-host.invalid:4242:100:cafe01"
    store.claim(elsewhere, 1, clock.now(), 30)
    worker = make_worker(clock=clock)

    assert worker.reclaim() == []
    clock.advance(29)
    assert worker.reclaim() == []
    clock.advance(2)
    (stored,) = worker.reclaim()

    assert isinstance(stored.event, NodeReclaimed)
    assert (stored.event.owner, stored.event.reason) == (elsewhere, "lease expired")
    assert stored.at == clock.now()
    (done,) = worker.run_until_finished([record.id])
    assert done.status == "succeeded"


# --- outcomes whose lease was lost ------------------------------------------------------------


def test_an_outcome_of_a_cancelled_run_is_discarded(
    store: SQLiteStore,
    make_worker: MakeWorker,
    run_in_thread: RunInThread,
    probe: runtime_tasks.Probe,
) -> None:
    spec = spec_of([{"id": "slow", "task": "blocking", "args": {"name": "slow"}}])
    record = start_run(store, spec, {})
    thread, records = run_in_thread(make_worker(), record.id)
    assert probe.started.wait(timeout=10)

    cancel_run(store, record.id, reason="changed my mind", by="tester")
    probe.release.set()
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert [r.status for r in records] == ["cancelled"]
    assert events_of(store, record.id, NodeSucceeded) == []
    (cancelled,) = events_of(store, record.id, RunCancelled)
    assert (cancelled.reason, cancelled.by) == ("changed my mind", "tester")
    assert store.get_run(record.id).status == "cancelled"
    assert store.ready_count(record.id) == 0


def test_an_outcome_whose_lease_went_to_another_owner_is_discarded(
    store: SQLiteStore, make_worker: MakeWorker, probe: runtime_tasks.Probe
) -> None:
    spec = spec_of([{"id": "slow", "task": "blocking", "args": {"name": "slow"}}])
    record = start_run(store, spec, {})
    worker = make_worker()
    worker.step()  # claims and starts the attempt
    assert probe.started.wait(timeout=10)

    # behind the worker's back: the lease is taken away and given to someone else
    store.reclaim(time.time(), dead_owners=[worker.owner], reason="taken away")
    elsewhere = "another-host.invalid:4242:100:cafe02"
    assert len(store.claim(elsewhere, 1, time.time(), 3600)) == 1
    probe.release.set()
    worker.drain()

    assert events_of(store, record.id, NodeSucceeded) == []
    assert [lease.owner for lease in store.leases(record.id)] == [elsewhere]
    assert store.get_run(record.id).status == "running"


def test_an_outcome_refused_for_a_conflict_is_recorded_when_retried(
    store: SQLiteStore, make_worker: MakeWorker, probe: runtime_tasks.Probe
) -> None:
    spec = spec_of(
        [
            {"id": "slow", "task": "blocking", "args": {"name": "slow"}, "priority": 1},
            {"id": "other", "task": "echo", "args": {"value": 2}},
        ]
    )
    record = start_run(store, spec, {})
    worker = make_worker(WorkerOptions(concurrency=1))
    worker.step()  # claims ``slow`` (the higher priority) only
    assert probe.started.wait(timeout=10)
    [(lease_node, lease_owner)] = [(lease.node, lease.owner) for lease in store.leases(record.id)]
    assert (lease_node, lease_owner) == ("slow", worker.owner)

    # the run moves on behind the worker's back, so its first commit is refused
    elsewhere = "another-host.invalid:4242:100:cafe03"
    (claimed,) = store.claim(elsewhere, 1, time.time(), 3600)
    assert claimed.lease.node == "other"
    probe.release.set()
    worker.drain()

    (succeeded,) = events_of(store, record.id, NodeSucceeded)
    assert (succeeded.node, succeeded.output) == ("slow", "slow")
    assert [(lease.node, lease.owner) for lease in store.leases(record.id)] == [
        ("other", elsewhere)
    ]
    assert store.ready_count(record.id) == 1


def test_release_puts_the_workers_leases_back_on_the_queue(
    store: SQLiteStore, make_worker: MakeWorker, probe: runtime_tasks.Probe
) -> None:
    spec = spec_of(
        [{"id": "slow", "task": "blocking", "args": {"name": "slow"}}],
        outputs={"slow": "nodes.slow.output"},
    )
    record = start_run(store, spec, {})
    observed: list[StoredEvent] = []
    first = make_worker(observer=observed.extend)
    first.step()
    assert probe.started.wait(timeout=10)
    assert [lease.owner for lease in store.leases(record.id)] == [first.owner]

    first.release()

    (reclaimed,) = events_of(store, record.id, NodeReclaimed)
    assert (reclaimed.node, reclaimed.owner, reclaimed.reason) == (
        "slow",
        first.owner,
        "worker stopped",
    )
    assert observed[-1].event == reclaimed
    assert store.leases(record.id) == []
    assert store.ready_count(record.id) == 1
    probe.release.set()
    first.executor.shutdown(wait=True)

    (done,) = make_worker().run_until_finished([record.id])
    assert done.status == "succeeded"
    assert done.output == {"slow": "slow"}
    assert len(events_of(store, record.id, NodeSucceeded)) == 1


# --- failures ---------------------------------------------------------------------------------


def test_a_task_that_raises_fails_the_run(store: SQLiteStore, make_worker: MakeWorker) -> None:
    spec = spec_of(
        [
            {"id": "boom", "task": "fail_value", "args": {"message": "kaput"}},
            {"id": "after", "task": "echo", "after": ["boom"]},
        ]
    )
    record = start_run(store, spec, {})

    (done,) = make_worker().run_until_finished([record.id])

    assert done.status == "failed"
    assert done.reason is not None
    assert "'boom'" in done.reason
    assert "ValueError: kaput" in done.reason
    (failed,) = events_of(store, record.id, NodeFailed)
    assert (failed.node, failed.attempt, failed.error.type) == ("boom", 1, "ValueError")
    assert "fail_value" in failed.error.traceback
    (run_failed,) = events_of(store, record.id, RunFailed)
    assert run_failed.node == "boom"
    assert [event.node for event in events_of(store, record.id, NodeStarted)] == ["boom"]


def test_a_failing_expression_fails_the_run_without_scheduling_the_node(
    store: SQLiteStore, make_worker: MakeWorker
) -> None:
    spec = spec_of([{"id": "inc", "task": "echo", "args": {"value": "${{ input.n + 1 }}"}}])
    record = start_run(store, spec, {"n": "not a number"})

    (done,) = make_worker().run_until_finished([record.id])

    assert done.status == "failed"
    assert done.reason is not None
    assert "'inc'" in done.reason
    assert "ExpressionError" in done.reason
    assert events_of(store, record.id, NodeScheduled) == []
    assert events_of(store, record.id, NodeStarted) == []
    (failed,) = events_of(store, record.id, NodeFailed)
    assert (failed.node, failed.attempt, failed.error.retryable) == ("inc", 0, False)


# --- the run report ---------------------------------------------------------------------------


def test_the_run_report_of_a_finished_run(store: SQLiteStore, make_worker: MakeWorker) -> None:
    spec = spec_of(
        [
            {"id": "a", "task": "echo", "args": {"value": "${{ input.n }}"}},
            {
                "id": "b",
                "task": "flaky",
                "after": ["a"],
                "retry": {"max_attempts": 3, "initial_backoff": 0},
            },
            {"id": "c", "task": "echo", "after": ["a"], "when": "input.n > 100"},
        ],
        outputs={"b": "nodes.b.output"},
    )
    record = start_run(store, spec, {"n": 7})
    (done,) = make_worker().run_until_finished([record.id])
    assert done.status == "succeeded"

    report = run_report(compile_plan(spec), store.history(record.id))

    assert report.state.status.value == "succeeded"
    a, b, c = report.nodes["a"], report.nodes["b"], report.nodes["c"]
    assert (a.status, a.attempts, a.args, a.output) == ("succeeded", 1, {"value": 7}, 7)
    assert (b.status, b.attempts, b.output) == ("succeeded", 2, "ok on attempt 2")
    assert b.error is not None
    assert b.error.message == "first attempt fails"
    assert (c.status, c.attempts, c.output) == ("skipped", 0, None)
    assert c.reason is not None
    assert "input.n > 100" in c.reason
    assert c.duration is None
    for node in (a, b):
        assert node.duration is not None
        assert node.duration >= 0
        assert node.reclaimed == 0
    assert report.duration is not None
    assert report.duration >= 0
    assert report.started_at is not None
    assert a.started_at is not None
    assert b.started_at is not None
    assert report.started_at <= a.started_at <= b.started_at


# --- retries wait their backoff on the queue ---------------------------------------------------


def test_a_retry_waits_for_its_backoff_on_the_queue_not_in_a_thread(
    store: SQLiteStore, make_worker: MakeWorker
) -> None:
    clock = FakeClock()
    spec = spec_of(
        [
            {
                "id": "b",
                "task": "flaky",
                "retry": {"max_attempts": 2, "initial_backoff": "1m", "jitter": 0},
            }
        ],
        outputs={"b": "nodes.b.output"},
    )
    record = start_run(store, spec, {}, clock=clock)
    worker = make_worker(clock=clock)

    for _ in range(1000):  # until the first attempt's failure is recorded
        worker.step(wait=True)
        if events_of(store, record.id, NodeFailed):
            break
    (retry,) = [e for e in events_of(store, record.id, NodeScheduled) if e.attempt == 2]
    assert retry.not_before == clock.now() + 60
    for _ in range(5):  # nothing runs, nothing is held, while the retry waits
        worker.step(wait=True)
    assert [e.attempt for e in events_of(store, record.id, NodeStarted)] == [1]
    assert store.leases(record.id) == []
    assert store.ready_count(record.id) == 1

    clock.advance(60)
    (done,) = worker.run_until_finished([record.id])

    assert (done.status, done.output) == ("succeeded", {"b": "ok on attempt 2"})
    assert [e.attempt for e in events_of(store, record.id, NodeStarted)] == [1, 2]

"""A worker's presence in the store's list of live workers, on a real SQLite store with
a fake clock: registered on its first turn, seen again about every ten seconds (not on
every turn), registered again if it was forgotten meanwhile, removed when it stops
cleanly. ``keel run``'s in-process worker executes only its own runs: it is listed as a
worker of those runs, and serves no queue for others.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest

from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.runtime.worker.presence import (
    LIVE_WITHIN,
    live_workers,
    queues_without_worker,
    run_is_served,
)
from keel.spec import parse_spec
from keel.store import WorkerRecord
from keel.store.sqlite import SQLiteStore
from tests.unit import runtime_tasks  # noqa: F401  (loaded, as a worker loads its code)

SPEC = parse_spec(
    {"name": "w", "nodes": [{"id": "a", "task": "tests.unit.runtime_tasks:echo",
                             "args": {"value": 1}}]}
)  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def listed(store: SQLiteStore) -> list[WorkerRecord]:
    return store.live_workers(seen_since=0.0)


def test_a_worker_is_listed_from_its_first_turn_and_removed_when_it_stops(
    store: SQLiteStore, clock: FakeClock
) -> None:
    worker = Worker(store, WorkerOptions(announce=True, queues=("a", "b")), clock=clock)
    try:
        worker.step()

        (me,) = listed(store)
        assert me.owner == worker.owner
        assert (me.queues, me.started_at, me.seen_at) == (("a", "b"), clock.now(), clock.now())
        assert me.owner.startswith(f"{me.host}:{me.pid}:")

        stop = threading.Event()
        stop.set()
        worker.run_forever(stop)  # a clean stop
        assert listed(store) == []
    finally:
        worker.close()


def test_the_heartbeat_is_one_statement_every_few_seconds_not_every_turn(
    store: SQLiteStore, clock: FakeClock
) -> None:
    worker = Worker(store, WorkerOptions(announce=True), clock=clock)
    try:
        worker.step()
        started = clock.now()
        clock.advance(LIVE_WITHIN / 6)
        worker.step()
        assert listed(store)[0].seen_at == started  # not due yet

        clock.advance(LIVE_WITHIN / 6)
        worker.step()
        (me,) = listed(store)
        assert (me.started_at, me.seen_at) == (started, clock.now())
        assert me.queues is None  # every queue
    finally:
        worker.close()


def test_a_worker_forgotten_meanwhile_registers_again(store: SQLiteStore, clock: FakeClock) -> None:
    worker = Worker(store, WorkerOptions(announce=True), clock=clock)
    try:
        worker.step()
        started = clock.now()
        clock.advance(LIVE_WITHIN)
        assert store.forget_workers(seen_before=clock.now()) == 1

        worker.step()

        (me,) = listed(store)
        assert (me.started_at, me.seen_at) == (started, clock.now())
    finally:
        worker.close()


def test_a_worker_that_does_not_announce_is_not_listed(
    store: SQLiteStore, clock: FakeClock
) -> None:
    worker = Worker(store, clock=clock)
    try:
        worker.step()
        assert listed(store) == []
    finally:
        worker.close()


def test_the_worker_of_keel_run_is_listed_for_its_runs_only(
    store: SQLiteStore, clock: FakeClock
) -> None:
    run = start_run(store, SPEC, {}, clock=clock)
    other = start_run(store, SPEC, {}, clock=clock)
    child = dataclasses.replace(other, id="child", parent_run=run.id)
    worker = Worker(store, WorkerOptions(announce=True, runs=(run.id,)), clock=clock)
    now = clock.now()

    assert not run_is_served(store, run, ["default"], now)
    worker.announce()
    try:
        (record,) = listed(store)
        assert record.runs == (run.id,)
        assert run_is_served(store, run, ["default"], now)
        assert not run_is_served(store, other, ["default"], now)
        assert run_is_served(store, child, ["default"], now)  # it executes children too
        assert queues_without_worker(store, ["default"], now) == ["default"]  # not for others
    finally:
        worker.close()
    assert listed(store) == []  # it left when it stopped
    assert not run_is_served(store, run, ["default"], now)


def test_queues_without_a_live_worker(store: SQLiteStore, clock: FakeClock) -> None:
    now = clock.now()
    store.register_worker(WorkerRecord("h:1:1:a", "h", 1, ("default",), now, now))
    gone = now - LIVE_WITHIN - 1  # killed: its row stays, it is no longer seen
    store.register_worker(WorkerRecord("h:2:2:b", "h", 2, ("special",), gone, gone))

    assert [w.owner for w in live_workers(store, now)] == ["h:1:1:a"]
    assert queues_without_worker(store, ["default", "special", "x"], now) == ["special", "x"]

    store.register_worker(WorkerRecord("h:3:3:c", "h", 3, None, now, now))  # every queue
    assert queues_without_worker(store, ["default", "special", "x"], now) == []

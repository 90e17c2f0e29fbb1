"""Fixtures of the store contract suite: a store per backend, specs, and a run driver.

``store`` is parametrised over ``BACKENDS``; a backend is a function that opens a fresh,
empty store: SQLite in a test's temporary directory, PostgreSQL (the server on this
machine, ``KEEL_TEST_POSTGRES``) in a schema of its own, dropped afterwards. Tests that
reach into the database itself (tampering, migrations, several processes) are
SQLite-specific and use ``sqlite_store``.

``Driver`` moves one run forward the way the runtime does: ``advance`` on a state
replayed from the store's history, then ``create_run`` / ``commit``. The store is the
only memory, so a test may mix driver steps with direct store calls.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from keel.engine import (
    ErrorInfo,
    Event,
    NodeFailed,
    NodeSucceeded,
    RunCancelled,
    RunStarted,
    RunState,
    apply,
    compile_plan,
)
from keel.runtime.runs import advance
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store import Claimed, Committed, Lease, Store, StoredEvent, Transition
from keel.store.records import CircuitOutcome, Ready
from keel.store.sqlite import SQLiteStore
from keel.store.writes import CountCircuit, Enqueue
from tests.postgres import PostgresStore, open_postgres

#: the time every test starts at (seconds since the epoch)
T0 = 1_700_000_000.0

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda directory: SQLiteStore(directory / "keel.db"),
    "postgres": lambda _: open_postgres(),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = BACKENDS[request.param](tmp_path)
    yield opened
    opened.close()
    if isinstance(opened, PostgresStore):
        opened.drop_schema()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "keel.db")
    yield opened
    opened.close()


def raw_sql(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL on a store's file through a connection of its own, as an intruder would."""
    with closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(sql, params).fetchall()


# --- specs --------------------------------------------------------------------------------


def make_spec(name: str = "t", outputs: dict[str, str] | None = None) -> WorkflowSpec:
    """Two nodes, ``b`` after ``a``."""
    return parse_spec(
        {
            "name": name,
            "nodes": [
                {"id": "a", "task": "m:f"},
                {"id": "b", "task": "m:f", "after": ["a"]},
            ],
            "outputs": outputs if outputs is not None else {"b": "nodes.b.output"},
        }
    )


def three_node_spec() -> WorkflowSpec:
    """``a``, then ``b`` and ``c`` in parallel, reading ``a``'s output."""
    return parse_spec(
        {
            "name": "three",
            "nodes": [
                {"id": "a", "task": "m:f", "args": {"n": "${{ input.n }}"}},
                {"id": "b", "task": "m:f", "args": {"x": "${{ nodes.a.output }}"}},
                {"id": "c", "task": "m:f", "after": ["a"]},
            ],
            "outputs": {"b": "nodes.b.output", "c": "nodes.c.output"},
        }
    )


def roots_spec(*roots: str) -> WorkflowSpec:
    """Independent nodes, all ready as soon as the run starts."""
    return parse_spec({"name": "roots", "nodes": [{"id": r, "task": "m:f"} for r in roots]})


def map_spec(**node: Any) -> WorkflowSpec:
    """One map node over ``input.items``: one ready attempt per item at the start."""
    fan = {"id": "fan", "kind": "map", "task": "m:g", "items": "input.items", "item_arg": "i"}
    return parse_spec({"name": "fan", "nodes": [{**fan, **node}]})


# --- driving a run ------------------------------------------------------------------------


class Driver:
    """One run, moved forward through the store as the runtime would."""

    def __init__(
        self, store: Store, spec: WorkflowSpec, run_id: str = "run-1", run_input: Any = None
    ) -> None:
        self.store = store
        self.spec = spec
        self.plan = compile_plan(spec)
        self.run_id = run_id
        self.input = {} if run_input is None else run_input
        self.now = T0

    def tick(self, seconds: float = 0.5) -> float:
        self.now += seconds
        return self.now

    def first(self) -> Transition:
        """The transition ``start_run`` commits with the run."""
        started = RunStarted(
            workflow=self.spec.name, spec_version=self.spec.version, input=self.input
        )
        return advance(self.run_id, RunState.new(self.plan), [started], self.now)

    def start(self, origin: str | None = None) -> list[StoredEvent]:
        return self.store.create_run(self.spec, self.input, self.first(), origin=origin).events

    def state(self) -> RunState:
        """The run's state replayed from the store (what ``RunCache`` does)."""
        state = RunState.new(self.plan)
        for stored in self.store.history(self.run_id):
            apply(state, stored.event, stored.seq)
            state.head = stored.hash
        return state

    def step(self, causes: list[Event], done: tuple[Lease, ...] = ()) -> Transition:
        """The transition for ``causes`` at the next tick, not committed."""
        return advance(self.run_id, self.state(), causes, self.tick(), done)

    def claim(self, owner: str = "w1", limit: int = 10, lease_for: float = 30.0) -> list[Claimed]:
        return self.store.claim(owner, limit, self.tick(), lease_for, run_id=self.run_id)

    def commit(self, transition: Transition) -> Committed:
        (result,) = self.store.commit([transition])
        if result.error is not None:
            raise result.error
        return result

    def succeed(self, lease: Lease, output: Any) -> Committed:
        event = NodeSucceeded(
            node=lease.node, attempt=lease.attempt, output=output, item=lease.item
        )
        return self.commit(self.step([event], (lease,)))

    def fail(self, lease: Lease, message: str = "boom") -> Committed:
        error = ErrorInfo(type="Boom", message=message, retryable=False)
        event = NodeFailed(node=lease.node, attempt=lease.attempt, error=error, item=lease.item)
        return self.commit(self.step([event], (lease,)))

    def cancel(self, reason: str = "stop") -> Committed:
        return self.commit(self.step([RunCancelled(reason=reason, by="tester")]))


def finished_three_node_run(store: Store, run_id: str = "run-1") -> Driver:
    """A completed run of ``three_node_spec`` with 11 events, claims and outcomes included."""
    driver = Driver(store, three_node_spec(), run_id, {"n": 2})
    driver.start(origin="tests/contract")
    (a,) = driver.claim("w1")
    driver.succeed(a.lease, "A")
    b, c = sorted(driver.claim("w2"), key=lambda claimed: claimed.lease.node)
    driver.succeed(b.lease, {"text": "B", "n": 1.5})
    driver.succeed(c.lease, ["C"])
    return driver


def with_enqueued(transition: Transition, ready: Sequence[Ready]) -> Transition:
    """The transition with these attempts queued in place of the ones it queued."""
    kept = [write for write in transition.writes if not isinstance(write, Enqueue)]
    return dataclasses.replace(transition, writes=[*kept, *map(Enqueue, ready)])


def circuit_opened(store: Store, spec: WorkflowSpec, owner: str) -> Driver:
    """Run ``r1`` of ``spec`` (one node ``a`` behind circuit ``crm``) fails once and
    opens the circuit for 60 s; run ``r2`` is then started, its ``a`` held by it. The
    driver of ``r1`` (its ``now``: when the circuit opened)."""
    first = Driver(store, spec, "r1")
    first.start()
    (claimed,) = first.claim(owner)
    error = ErrorInfo(type="ConnectionError", message="down", retryable=False)
    failed = first.step([NodeFailed(node="a", attempt=1, error=error)], (claimed.lease,))
    first.commit(failed.adding(CountCircuit(CircuitOutcome("crm", False, 1, 60.0))))
    Driver(store, spec, "r2").start()
    return first

"""A worker's ``RunCache`` loading a run another process started: one read of its
history (the first event names the version), the same state as through its record."""

from __future__ import annotations

from typing import Any

from keel.engine.state import RunState, apply
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.runs import RunCache
from keel.spec import parse_spec
from keel.store.sqlite import SQLiteStore

TASKS = "tests.unit.runtime_tasks"
SPEC = parse_spec({
    "name": "w",
    "nodes": [{"id": "a", "task": f"{TASKS}:echo", "args": {"value": 1}},
              {"id": "b", "task": f"{TASKS}:echo", "args": {"value": 2}, "after": ["a"]}],
})  # fmt: skip


class Reads:
    """A store whose reads of runs and histories are counted."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in ("get_run", "history"):
            self.calls.append(name)
        return getattr(self.store, name)


def through_record(store: SQLiteStore, run_id: str) -> RunState:
    """The state as the cache built it before: the record, then the history."""
    record = store.get_run(run_id)
    state = RunState.new(RunCache(store).plan(record.spec_version), record.id)
    for stored in store.history(record.id):
        apply(state, stored.event, stored.seq)
        state.head = stored.hash
    return state


def test_a_run_started_elsewhere_is_loaded_from_its_history_alone(store: SQLiteStore) -> None:
    record = start_run(store, SPEC, {}, clock=FakeClock())
    (claimed,) = store.claim("w1", 4, FakeClock().now(), 30.0)
    reads = Reads(store)

    state = RunCache(reads).state(record.id)  # type: ignore[arg-type]

    assert reads.calls == ["history"]
    expected = through_record(store, record.id)
    assert (state.run_id, state.last_seq, state.head, state.status) == (
        expected.run_id, expected.last_seq, expected.head, expected.status,
    )  # fmt: skip
    assert state.head == claimed.started.hash
    assert state.nodes == expected.nodes
    assert state.plan.spec.version == SPEC.version


def test_a_prefix_of_a_run_id_still_loads_the_run_through_its_record(
    store: SQLiteStore,
) -> None:
    record = start_run(store, SPEC, {}, clock=FakeClock())
    reads = Reads(store)

    state = RunCache(reads).state(record.id[:10])  # type: ignore[arg-type]

    assert "get_run" in reads.calls
    assert (state.run_id, state.last_seq) == (record.id, through_record(store, record.id).last_seq)


def test_a_client_start_records_the_run_and_returns_its_whole_id(tmp_path: Any) -> None:
    from keel.runtime.client import Client

    store = SQLiteStore(tmp_path / "keel.db")
    client = Client(store=store)
    run_id = client.start(SPEC, {})

    record = client.run(run_id)
    assert (record.id, record.status, record.spec_version) == (run_id, "running", SPEC.version)
    assert [type(s.event).__name__ for s in client.history(run_id)][:2] == [
        "RunStarted", "NodeScheduled",
    ]  # fmt: skip
    store.close()

"""``fork_run`` on SQLite: what can be forked and how, and bad requests refused before
anything is recorded, each naming what was wrong (the contract suite runs the forks
themselves on every backend: tests/contract/test_fork_store.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.engine.events import NodeSetByHand
from keel.errors import KeelError
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.fork import fork_run
from keel.runtime.operations.fork_plan import effects
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store.sqlite import SQLiteStore
from tests.unit.fork_tasks import EXECUTED, TASKS, saga

T0 = 1_760_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "keel.db")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def worker(store: SQLiteStore, clock: FakeClock) -> Iterator[Worker]:
    EXECUTED.clear()
    opened = Worker(store, WorkerOptions(poll=0.01), clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def failed(store: SQLiteStore, clock: FakeClock, worker: Worker) -> str:
    run = start_run(store, saga(), {"city": "Reykjavik"}, clock=clock)
    worker.run_until_finished([run.id])
    return run.id


def refused(store: SQLiteStore, run_id: str, node: str, sets: dict[str, object] | None = None,
            **options: object) -> str:  # fmt: skip
    runs, last = len(store.list_runs()), store.get_run(run_id).last_seq
    with pytest.raises(KeelError) as caught:
        fork_run(store, run_id, node, sets, **options)  # type: ignore[arg-type]
    assert len(store.list_runs()) == runs  # nothing recorded
    assert store.get_run(run_id).last_seq == last
    return str(caught.value)


def test_a_run_that_has_not_ended_cannot_be_forked(store: SQLiteStore, clock: FakeClock) -> None:
    running = start_run(store, saga(), {"city": "Oslo"}, clock=clock)
    said = refused(store, running.id, "car")
    assert f"run {running.id[:8]} is running: only a run that has ended can be forked" in said


def test_nodes_and_sets_that_do_not_fit_are_refused_by_name(
    store: SQLiteStore, failed: str
) -> None:
    assert "workflow 'saga' has no node 'boat' (nodes: flight, hotel, car)" in refused(
        store, failed, "boat")  # fmt: skip
    assert "has no node 'boat'" in refused(store, failed, "car", {"nodes.boat.output": 1})
    said = refused(store, failed, "hotel", {"nodes.car.output": {"kind": "car"}})
    assert (
        "cannot set the output of node 'car': it runs again in this fork (it is after hotel)"
        in said
    )
    said = refused(store, failed, "car", {"nodes.car.output": {}})
    assert "(it is the node forked from)" in said
    assert "cannot set 'city'" in refused(store, failed, "car", {"city": "Oslo"})
    assert "cannot set 'nodes.car'" in refused(store, failed, "car", {"nodes.car": 1})
    said = refused(store, failed, "car", {"input.city": 7})
    assert "does not match its schema" in said
    assert "input.city" in said
    said = refused(store, failed, "car", {"input.city.name": "Oslo"})
    assert "cannot set input.city.name: input.city is not an object" in said
    said = refused(store, failed, "car", {"nodes.hotel.output": "a string"})
    assert "does not fit the return type" in said
    assert "node 'hotel'" in said


def test_versions_that_are_not_the_workflows_are_refused(store: SQLiteStore, failed: str) -> None:
    assert "give at least 6 characters" in refused(store, failed, "car", version="abc")
    assert "workflow 'saga' has no version 'abcdef'" in refused(
        store, failed, "car", version="abcdef")  # fmt: skip
    other = parse_spec({"name": "other", "nodes": [{"id": "a", "task": f"{TASKS}:cancel"}]})
    store.save_spec(other, T0)
    said = refused(store, failed, "car", version=other.version)
    assert "is of workflow 'other', not 'saga': a fork runs the same workflow" in said


def test_a_fork_can_run_another_version_and_give_a_reused_node_an_output(
    store: SQLiteStore, clock: FakeClock, worker: Worker, failed: str
) -> None:
    base = saga().model_dump(mode="json", exclude_defaults=True)
    base["nodes"].append({"id": "insure", "task": f"{TASKS}:book", "side_effect": True,
                          "args": {"kind": "insurance", "city": "${{ input.city }}"}})  # fmt: skip
    newer = WorkflowSpec.model_validate(base)
    store.deploy([(newer, "saga.yaml")], T0, by="tester")
    hotel = {"kind": "hotel", "ref": "hotel-by-phone"}

    forked = fork_run(store, failed, "car", {"input.city": "Lisbon", "nodes.hotel.output": hotel},
                      version=newer.version[:8], by="ada", clock=clock)  # fmt: skip
    steps = {s.node: (s.action, s.reason, s.effects) for s in forked.plan.steps}
    assert steps["hotel"][0] == "set"
    assert steps["insure"] == ("run", f"not in the version of run {failed[:8]}",
                               ("side effect",))  # fmt: skip
    assert any("runs version" in note for note in forked.plan.notes)
    assert forked.run is not None
    assert forked.run.spec_version == newer.version
    (done,) = worker.run_until_finished([forked.run.id])
    assert done.status == "succeeded"
    (by_hand,) = [s.event for s in store.history(done.id) if isinstance(s.event, NodeSetByHand)]
    assert (by_hand.node, by_hand.output, by_hand.by) == ("hotel", hotel, "ada")
    assert EXECUTED == {"flight": 1, "hotel": 1, "car": 2, "cancel": 2, "insurance": 1}


def test_a_dry_run_decides_and_records_nothing(store: SQLiteStore, failed: str) -> None:
    runs, last = len(store.list_runs()), store.get_run(failed).last_seq
    forked = fork_run(store, failed, "flight", dry_run=True)
    assert forked.run is None
    assert [s.action for s in forked.plan.steps] == ["run", "run", "run"]
    assert (len(store.list_runs()), store.get_run(failed).last_seq) == (runs, last)


def test_what_running_a_node_again_touches_is_named() -> None:
    child = parse_spec({"name": "child", "nodes": [{"id": "x", "task": "m:f"}]})
    spec = parse_spec({
        "name": "effects",
        "notify": [{"kind": "webhook", "url": "https://hooks.example/k",
                    "on": ["approval_requested"]}],
        "nodes": [
            {"id": "plain", "task": "m:f"},
            {"id": "pay", "task": "m:f", "side_effect": True},
            {"id": "ask", "kind": "llm", "model": "gpt-x", "prompt": "hi", "max_tokens": 5},
            {"id": "agent", "kind": "agent", "model": "gpt-x", "prompt": "go",
             "max_tokens": 5, "max_turns": 2, "max_tool_calls": 2, "max_cost": 1,
             "tools": [{"task": "m:send", "side_effect": True}, "m:look"]},
            {"id": "check", "kind": "approval", "title": "OK?"},
            {"id": "go", "kind": "signal", "signal": "go"},
            {"id": "sub", "kind": "subworkflow", "workflow": "child", "version": child.version},
        ],
    })  # fmt: skip
    assert {node.id: effects(spec, node.id) for node in spec.nodes} == {
        "plain": (),
        "pay": ("side effect",),
        "ask": ("calls model gpt-x",),
        "agent": ("calls model gpt-x", "its tools send have side effects"),
        "check": ("asks a person again", "notifies webhook https://hooks.example/k"),
        "go": ("waits for signal 'go' again",),
        "sub": ("starts a child run of child",),
    }


def test_nodes_that_did_not_succeed_are_decided_again_saying_how_they_ended(
    store: SQLiteStore, clock: FakeClock
) -> None:
    from keel.runtime.operations.control import cancel_run

    run = start_run(store, saga(), {"city": "Oslo"}, clock=clock)
    cancel_run(store, run.id, by="tester", clock=clock)  # the flight never ran
    forked = fork_run(store, run.id, "car", dry_run=True)
    assert [(s.node, s.action, s.reason) for s in forked.plan.steps] == [
        ("flight", "run", f"not finished in run {run.id[:8]}"),
        ("hotel", "run", f"not reached in run {run.id[:8]}"),
        ("car", "run", "forked from here"),
    ]


def test_built_in_steps_that_change_the_world_are_named_as_side_effects() -> None:
    spec = parse_spec({
        "name": "steps",
        "nodes": [
            {"id": "look", "kind": "http", "url": "https://api.example.com/a"},
            {"id": "post", "kind": "http", "method": "POST",
             "url": "https://api.example.com/claims/${{ input.id }}",
             "headers": {"Authorization": "Bearer ${{ secrets.API_TOKEN }}"}},
            {"id": "ping", "kind": "http", "url": "https://api.example.com/p",
             "side_effect": True},
            {"id": "run", "kind": "shell", "command": ["convert", "${{ input.path }}"]},
            {"id": "read", "kind": "sql", "connection": "claims", "query": "SELECT 1"},
            {"id": "write", "kind": "sql", "connection": "claims",
             "query": "insert into notes values (:a)", "params": {"a": 1}},
            {"id": "mail", "kind": "email", "to": ["ops@example.com"], "subject": "s"},
            {"id": "quiet", "kind": "shell", "command": ["true"], "side_effect": False},
        ],
    })  # fmt: skip
    assert {node.id: effects(spec, node.id) for node in spec.nodes} == {
        "look": (),
        "post": ("side effect (http: POST to https://api.example.com/claims/${{ input.id }})",),
        "ping": ("side effect (http: GET to https://api.example.com/p)",),
        "run": ("side effect (shell: runs convert)",),
        "read": (),
        "write": ("side effect (sql: writes to claims (INSERT))",),
        "mail": ("side effect (email: sends email to ops@example.com)",),
        "quiet": (),
    }

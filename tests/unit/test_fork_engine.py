"""The engine's side of a fork: ``NodeReused`` ends a node as succeeded without an
attempt, so ``decide`` schedules only what the fork runs again; a reused node whose
effect the run forked from undid (``compensated``) is never compensated by the fork;
``RunForked`` changes nothing in the run it is recorded on; old histories still read."""

from __future__ import annotations

import random
from typing import Any

from keel.engine import (
    NodeScheduled,
    NodeStatus,
    NodeSucceeded,
    RunState,
    RunStatus,
    apply,
    compile_plan,
    decide,
    from_data,
    to_data,
)
from keel.engine.events import MapExpanded, NodeReused, RunForked, RunStarted
from keel.spec import parse_spec
from tests.unit.engine_sim import BoomError, Simulation

SAGA = {
    "name": "saga",
    "nodes": [
        {"id": "flight", "task": "m:book", "compensate": "m:cancel"},
        {"id": "hotel", "task": "m:book", "after": ["flight"], "compensate": "m:cancel"},
        {"id": "car", "task": "m:book", "after": ["hotel"], "compensate": "m:cancel",
         "args": {"ref": "${{ nodes.hotel.output }}"}},
    ],
    "outputs": {"car": "nodes.car.output"},
}  # fmt: skip


def forked(spec: dict[str, Any], *reused: NodeReused) -> Simulation:
    """A fork's first events recorded, and what ``decide`` makes of them."""
    plan = compile_plan(parse_spec(spec))
    sim = Simulation(plan, RunState.new(plan))
    fork = {"run": "r1", "node": "car", "version": "v"}
    sim.record([RunStarted(workflow=plan.spec.name, spec_version="v", input={}, fork=fork),
                *reused])  # fmt: skip
    return sim


def reused(node: str, output: Any, *, compensated: bool = False) -> NodeReused:
    return NodeReused(node=node, output=output, from_run="r1", from_seq=4,
                      args={"kind": node}, compensated=compensated)  # fmt: skip


def outcome(failing: set[str]) -> Any:
    def run(node: str, args: dict[str, Any], attempt: int) -> Any:
        if node in failing:
            raise BoomError(f"{node} broke")
        return {"booked": node, "args": args}

    return run


def test_reused_nodes_are_succeeded_and_only_what_follows_is_scheduled() -> None:
    sim = forked(SAGA, reused("flight", "F-1"), reused("hotel", "H-1"))

    assert [e.node for e in sim.ready] == ["car"]
    assert sim.ready[0].args == {"ref": "H-1"}  # the reused output feeds the next node
    assert sim.state.nodes["flight"].status is NodeStatus.SUCCEEDED
    assert sim.state.nodes["hotel"].output == "H-1"
    state = sim.run(random.Random(0), outcome(set()))
    assert state.status is RunStatus.SUCCEEDED
    scheduled = [e.node for e in sim.history if isinstance(e, NodeScheduled)]
    assert scheduled == ["car"]


def test_a_failing_fork_does_not_undo_what_its_source_undid() -> None:
    sim = forked(SAGA, reused("flight", "F-1", compensated=True),
                 reused("hotel", "H-1", compensated=True))  # fmt: skip
    state = sim.run(random.Random(0), outcome({"car"}))

    assert state.status is RunStatus.FAILED
    assert [e.node for e in sim.history if isinstance(e, NodeScheduled)] == ["car"]


def test_a_failing_fork_undoes_what_it_took_over_with_its_recorded_arguments() -> None:
    sim = forked(SAGA, reused("flight", "F-1"), reused("hotel", "H-1", compensated=True))
    state = sim.run(random.Random(0), outcome({"car"}))

    assert state.status is RunStatus.FAILED
    undo = [e for e in sim.history if isinstance(e, NodeScheduled) and e.node != "car"]
    assert [(e.node, e.args) for e in undo] == [
        ("compensate:flight", {"kind": "flight", "output": "F-1"})]  # fmt: skip


def test_a_map_is_reused_whole_without_expanding_it() -> None:
    spec = {
        "name": "m",
        "nodes": [
            {"id": "each", "kind": "map", "task": "m:f", "items": "input.items",
             "item_arg": "x"},
            {"id": "sum", "task": "m:f", "args": {"values": "${{ nodes.each.output }}"}},
        ],
    }  # fmt: skip
    sim = forked(spec, reused("each", [1, 2, 3]))

    assert not [e for e in sim.history if isinstance(e, MapExpanded)]
    assert [(e.node, e.args) for e in sim.ready] == [("sum", {"values": [1, 2, 3]})]


def test_replaying_a_forks_history_gives_the_state_the_live_run_had() -> None:
    sim = forked(SAGA, reused("flight", "F-1"), reused("hotel", "H-1", compensated=True))
    sim.run(random.Random(1), outcome({"car"}))
    plan = sim.plan
    state = RunState.new(plan)
    for event in sim.history:
        apply(state, from_data(to_data(event)))
    assert (state.status, state.completed) == (sim.state.status, sim.state.completed)
    assert decide(state, 0.0) == []


def test_run_forked_changes_nothing_in_the_run_it_is_recorded_on() -> None:
    plan = compile_plan(parse_spec(SAGA))
    state = RunState.new(plan)
    apply(state, RunStarted(workflow="saga", spec_version="v", input={}))
    decide(state, 0.0)
    for node in ("flight", "hotel", "car"):
        apply(state, NodeSucceeded(node=node, attempt=1, output=node))
        decide(state, 0.0)
    before = (state.status, state.output, state.ended, list(state.completed))
    apply(state, RunForked(run_id="r2", node="car", by="ada", version="v"))
    assert decide(state, 0.0) == []
    assert (state.status, state.output, state.ended, list(state.completed)) == before


def test_the_new_events_read_back_and_a_run_started_before_forks_reads_as_before() -> None:
    for event in (reused("flight", {"ref": 1}, compensated=True),
                  RunForked(run_id="r2", node="car", by="ada", version="v"),
                  RunStarted(workflow="w", spec_version="v", input={},
                             fork={"run": "r1", "node": "car", "version": "v"})):  # fmt: skip
        assert from_data(to_data(event)) == event
    old = {"kind": "run_started", "workflow": "w", "spec_version": "v", "input": {}, "parent": None}
    assert to_data(from_data(old)) == old  # no ``fork`` written where there is none
    assert from_data(old) == RunStarted(workflow="w", spec_version="v", input={})

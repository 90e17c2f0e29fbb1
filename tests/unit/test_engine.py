"""The pure engine: join rules, conditions, maps, retries, failure, and replay."""

from __future__ import annotations

import random
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.engine import (
    EVENT_TYPES,
    AttemptEvent,
    NodeEvent,
    NodeScheduled,
    NodeSkipped,
    NodeStatus,
    NodeSucceeded,
    RunCancelled,
    RunCompleted,
    RunEnded,
    RunFailed,
    RunState,
    RunStatus,
    apply,
    compile_plan,
    from_data,
    is_finished,
    to_data,
)
from keel.engine.events import RunForked
from keel.spec import parse_spec
from tests.unit.engine_sim import BoomError, Simulation


def plan_of(nodes: list[dict[str, Any]], outputs: dict[str, str] | None = None) -> Any:
    return compile_plan(parse_spec({"name": "t", "nodes": nodes, "outputs": outputs or {}}))


def echo(node: str, args: dict[str, Any], attempt: int) -> Any:
    return args.get("x", node)


def snapshot(state: RunState) -> Any:
    return (
        state.status, state.output, state.reason, state.ended,
        {nid: (n.status, n.output, n.attempt, n.items_done, n.waiting_on)
         for nid, n in state.nodes.items()},
    )  # fmt: skip


def replay(sim: Simulation) -> RunState:
    state = RunState.new(sim.plan)
    for event in sim.history:
        apply(state, from_data(to_data(event)))  # through JSON, as the store will
    return state


def test_a_chain_passes_data_along_and_completes() -> None:
    plan = plan_of(
        [
            {"id": "a", "task": "m:f", "args": {"x": "${{ input.n + 1 }}"}},
            {"id": "b", "task": "m:f", "args": {"x": "${{ nodes.a.output * 10 }}"}},
        ],
        {"result": "nodes.b.output"},
    )
    state = Simulation.start(plan, {"n": 1}).run(random.Random(0), echo)
    assert state.status is RunStatus.SUCCEEDED
    assert state.output == {"result": 20}


def test_false_condition_skips_the_branch_and_the_join_still_runs() -> None:
    plan = plan_of(
        [
            {"id": "a", "task": "m:f", "args": {"x": 1}},
            {"id": "big", "task": "m:f", "when": "nodes.a.output > 5", "args": {"x": "big"}},
            {"id": "after_big", "task": "m:f", "args": {"x": "${{ nodes.big.output }}"}},
            {"id": "small", "task": "m:f", "when": "nodes.a.output <= 5", "args": {"x": "small"}},
            {"id": "join", "task": "m:f", "after": ["after_big", "small"], "args": {"x": "j"}},
        ]
    )
    state = Simulation.start(plan, {}).run(random.Random(1), echo)
    assert state.status is RunStatus.SUCCEEDED
    statuses = {nid: node.status for nid, node in state.nodes.items()}
    assert statuses == {
        "a": NodeStatus.SUCCEEDED, "big": NodeStatus.SKIPPED, "after_big": NodeStatus.SKIPPED,
        "small": NodeStatus.SUCCEEDED, "join": NodeStatus.SUCCEEDED,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "parents", "expected"),
    [
        ("none_failed", (1, 0, 1), "run"),
        ("none_failed", (0, 0, 2), "skip"),
        ("none_failed", (1, 1, 0), "upstream_failed"),
        ("all_succeeded", (1, 0, 1), "skip"),
        ("all_succeeded", (2, 0, 0), "run"),
        ("all_succeeded", (1, 1, 0), "upstream_failed"),
        ("one_succeeded", (1, 1, 0), "run"),
        ("one_succeeded", (0, 1, 1), "upstream_failed"),
        ("all_done", (0, 1, 1), "run"),
        ("one_failed", (1, 1, 0), "run"),
        ("one_failed", (2, 0, 0), "skip"),
    ],
)
def test_join_rules(rule: str, parents: tuple[int, int, int], expected: str) -> None:
    from keel.engine import join_outcome

    plan = plan_of(
        [{"id": "p1", "task": "m:f"}, {"id": "p2", "task": "m:f"},
         {"id": "c", "task": "m:f", "after": ["p1", "p2"], "join": rule}]
    )  # fmt: skip
    assert join_outcome(plan.nodes["c"], parents[0], parents[1]) == expected


def test_map_runs_every_item_and_keeps_their_order() -> None:
    plan = plan_of(
        [
            {"id": "nums", "task": "m:f", "args": {"x": [3, 1, 2]}},
            {"id": "double", "kind": "map", "task": "m:g", "items": "nodes.nums.output",
             "item_arg": "x"},
            {"id": "total", "task": "m:f", "args": {"x": "${{ nodes.double.output }}"}},
        ],
        {"doubled": "nodes.total.output"},
    )  # fmt: skip

    def outcome(node: str, args: dict[str, Any], attempt: int) -> Any:
        return args["x"] * 2 if node == "double" else args["x"]

    state = Simulation.start(plan, {}).run(random.Random(5), outcome)
    assert state.output == {"doubled": [6, 2, 4]}


def test_empty_map_succeeds_with_an_empty_list() -> None:
    plan = plan_of(
        [{"id": "m", "kind": "map", "task": "m:g", "items": "[]", "item_arg": "x"}],
        {"out": "nodes.m.output"},
    )
    assert Simulation.start(plan, {}).run(random.Random(0), echo).output == {"out": []}


def test_failed_attempts_are_retried_up_to_max_attempts() -> None:
    plan = plan_of(
        [{"id": "a", "task": "m:f", "retry": {"max_attempts": 3}}], {"out": "nodes.a.output"}
    )

    def flaky(node: str, args: dict[str, Any], attempt: int) -> Any:
        if attempt < 3:
            raise BoomError(f"attempt {attempt}")
        return attempt

    sim = Simulation.start(plan, {})
    state = sim.run(random.Random(0), flaky)
    assert state.output == {"out": 3}
    assert [e.attempt for e in sim.history if isinstance(e, NodeScheduled)] == [1, 2, 3]


def test_a_node_out_of_attempts_fails_the_run() -> None:
    plan = plan_of(
        [{"id": "a", "task": "m:f", "retry": {"max_attempts": 2}},
         {"id": "b", "task": "m:f", "after": ["a"]}]
    )  # fmt: skip

    def broken(node: str, args: dict[str, Any], attempt: int) -> Any:
        raise BoomError("always")

    state = Simulation.start(plan, {}).run(random.Random(0), broken)
    assert state.status is RunStatus.FAILED
    assert state.reason == "node 'a' failed: Boom: always"
    assert state.nodes["b"].status is NodeStatus.WAITING


def test_an_expression_error_fails_the_node_without_retrying() -> None:
    plan = plan_of(
        [
            {
                "id": "a",
                "task": "m:f",
                "args": {"x": "${{ input.missing.deep }}"},
                "retry": {"max_attempts": 5},
            }
        ]
    )
    sim = Simulation.start(plan, {})
    state = sim.run(random.Random(0), echo)
    assert state.status is RunStatus.FAILED
    assert not [e for e in sim.history if isinstance(e, NodeScheduled)]


# --- the event vocabulary ----------------------------------------------------------------------


def test_the_events_about_one_node_are_exactly_those_that_name_one() -> None:
    for cls in EVENT_TYPES.values():
        types = {item.name: item.type for item in fields(cls)}
        # ``RunFailing``/``RunFailed`` may name the node that failed, ``RunForked`` the node
        # a fork ran again from: they are about the run
        names_a_node = types.get("node") == "str" and cls is not RunForked
        assert issubclass(cls, NodeEvent) == names_a_node, cls.__name__
        assert issubclass(cls, AttemptEvent) == ("item" in types), cls.__name__


@pytest.mark.parametrize("ending", [RunCompleted(output=1), RunFailed(reason="r"), RunCancelled()])
def test_a_run_is_finished_after_exactly_the_events_that_end_it(ending: RunEnded) -> None:
    endings = {cls for cls in EVENT_TYPES.values() if issubclass(cls, RunEnded)}
    assert endings == {RunCompleted, RunFailed, RunCancelled}
    state = Simulation.start(plan_of([{"id": "a", "task": "m:f"}]), {}).state
    assert not is_finished(state.status)
    apply(state, ending)
    assert is_finished(state.status)
    assert is_finished(state.status.value)  # as a store's run record holds it
    finished = [status for status in RunStatus if is_finished(status)]
    assert finished == [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED]


# --- properties over random DAGs ------------------------------------------------------------


@st.composite
def random_plans(draw: st.DrawFn) -> Any:
    size = draw(st.integers(min_value=1, max_value=25))
    nodes: list[dict[str, Any]] = []
    for index in range(size):
        parents = draw(st.sets(st.integers(0, index - 1), max_size=3)) if index else set()
        node: dict[str, Any] = {
            "id": f"n{index}",
            "task": "m:f",
            "args": {
                "x": "${{ [" + ", ".join(f"nodes.n{p}.output" for p in sorted(parents)) + "] }}"
            },
            "join": draw(st.sampled_from(["none_failed", "all_done", "one_succeeded"])),
        }
        if parents and draw(st.booleans()):
            ref = f"nodes.n{min(parents)}.output"  # null when that parent was skipped
            node["when"] = f"{ref} != null && size({ref}) % 2 == 0"
        if draw(st.integers(0, 5)) == 0:
            node = {**node, "kind": "map", "items": "[1, 2, 3]", "item_arg": "i"}
        nodes.append(node)
    return plan_of(nodes, {"last": f"nodes.n{size - 1}.output"})


def size_of(node: str, args: dict[str, Any], attempt: int) -> Any:
    return [len(args["x"])] * (len(args["x"]) % 3)


@settings(max_examples=80, deadline=None)
@given(random_plans(), st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_any_completion_order_gives_the_same_final_state(
    plan: Any, first: random.Random, second: random.Random
) -> None:
    one = Simulation.start(plan, {}).run(first, size_of)
    two = Simulation.start(plan, {}).run(second, size_of)
    assert one.status is RunStatus.SUCCEEDED
    assert snapshot(one) == snapshot(two)


@settings(max_examples=80, deadline=None)
@given(random_plans(), st.randoms(use_true_random=False))
def test_replaying_the_history_reproduces_the_state(plan: Any, rng: random.Random) -> None:
    sim = Simulation.start(plan, {})
    sim.run(rng, size_of)
    assert snapshot(replay(sim)) == snapshot(sim.state)


@settings(max_examples=80, deadline=None)
@given(random_plans(), st.randoms(use_true_random=False))
def test_no_node_starts_before_its_parents_end_and_results_are_recorded_once(
    plan: Any, rng: random.Random
) -> None:
    sim = Simulation.start(plan, {})
    sim.run(rng, size_of)
    ended: set[str] = set()
    recorded: set[tuple[str, int | None]] = set()
    for event in sim.history:
        if isinstance(event, NodeScheduled) and event.attempt == 1 and event.item in (None, 0):
            missing = [p for p in plan.nodes[event.node].parents if p not in ended]
            assert not missing, f"{event.node} scheduled before {missing} ended"
        if isinstance(event, NodeSucceeded):
            key = (event.node, event.item)
            assert key not in recorded, f"{key} recorded twice"
            recorded.add(key)
            if event.item is None:
                ended.add(event.node)
        if isinstance(event, NodeSkipped):
            ended.add(event.node)


def test_a_stored_event_with_a_field_its_kind_lacks_or_an_unknown_kind_is_refused() -> None:
    data = to_data(NodeSucceeded(node="a", attempt=1, output=2))
    assert from_data(dict(data)) == NodeSucceeded(node="a", attempt=1, output=2)
    with pytest.raises(ValueError, match="unknown fields: colour, zeta"):
        from_data({**data, "zeta": 1, "colour": "red"})
    with pytest.raises(ValueError, match="unknown event kind"):
        from_data({**data, "kind": "node_vanished"})

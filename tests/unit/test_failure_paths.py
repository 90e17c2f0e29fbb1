"""The engine's failure paths: on_failure (continue, handler), compensation in reverse
completion order, the run's failure handler, deadlines, and manual retry / set-by-hand."""

from __future__ import annotations

import random
from typing import Any

import pytest

from keel.engine import (
    ErrorInfo,
    Event,
    NodeFailed,
    NodeScheduled,
    NodeStarted,
    NodeStatus,
    NodeSucceeded,
    RunFailed,
    RunStarted,
    RunState,
    RunStatus,
    apply,
    compile_plan,
    decide,
    from_data,
    to_data,
)
from keel.engine.events import (
    NodeSetByHand,
    NodeWithdrawn,
    RunDeadlineExceeded,
    RunFailing,
    RunRetried,
)
from keel.spec import parse_spec
from tests.unit import runtime_tasks  # noqa: F401  (loaded, as a worker loads its code: see task_access)
from tests.unit.engine_sim import BoomError, Simulation


def plan_of(data: dict[str, Any]) -> Any:
    return compile_plan(parse_spec({"name": "t", **data}))


def failing(*nodes: str) -> Any:
    def outcome(node: str, args: dict[str, Any], attempt: int) -> Any:
        if node in nodes:
            raise BoomError(f"{node} broke")
        return {"done": node}

    return outcome


def kinds(history: list[Event], *wanted: type[Event]) -> list[tuple[str, str]]:
    return [(type(e).__name__, getattr(e, "node", "")) for e in history if isinstance(e, wanted)]


def replayed(sim: Simulation) -> RunState:
    state = RunState.new(sim.plan)
    for event in sim.history:
        apply(state, from_data(to_data(event)))
    return state


SAGA = {
    "nodes": [
        {"id": "flight", "task": "m:book", "compensate": "m:cancel"},
        {"id": "hotel", "task": "m:book", "after": ["flight"], "compensate": "m:cancel"},
        {"id": "car", "task": "m:book", "after": ["hotel"], "compensate": "m:cancel"},
    ]
}


def test_continue_lets_the_run_go_on_and_children_see_a_failed_parent() -> None:
    plan = plan_of(
        {
            "nodes": [
                {"id": "a", "task": "m:f", "on_failure": "continue"},
                {"id": "b", "task": "m:f", "after": ["a"]},
                {"id": "c", "task": "m:f", "after": ["a"], "join": "all_done"},
            ]
        }
    )
    state = Simulation.start(plan, {}).run(random.Random(0), failing("a"))
    assert state.status is RunStatus.SUCCEEDED
    assert state.nodes["a"].status is NodeStatus.FAILED
    assert state.nodes["b"].status is NodeStatus.UPSTREAM_FAILED
    assert state.nodes["c"].status is NodeStatus.SUCCEEDED


def test_without_on_failure_the_same_failure_fails_the_run() -> None:
    plan = plan_of({"nodes": [{"id": "a", "task": "m:f"}, {"id": "c", "task": "m:f"}]})
    state = Simulation.start(plan, {}).run(random.Random(0), failing("a"))
    assert state.status is RunStatus.FAILED


def test_a_handler_receives_the_error_and_the_run_does_not_fail() -> None:
    plan = plan_of(
        {
            "nodes": [
                {"id": "charge", "task": "m:f", "on_failure": "tell_ops",
                 "retry": {"max_attempts": 2, "initial_backoff": 0}},
                {"id": "tell_ops", "task": "m:notify", "args": {"channel": "#ops"}},
            ]
        }
    )  # fmt: skip
    sim = Simulation.start(plan, {})
    state = sim.run(random.Random(0), failing("charge"))
    assert state.status is RunStatus.SUCCEEDED
    (handled,) = [e for e in sim.history if isinstance(e, NodeScheduled) and e.node == "tell_ops"]
    error = handled.args["error"]
    assert handled.args["channel"] == "#ops"
    assert (error["node"], error["type"], error["message"], error["attempts"]) == (
        "charge", "Boom", "charge broke", 2,
    )  # fmt: skip


def test_a_handler_is_skipped_when_its_node_succeeds() -> None:
    plan = plan_of(
        {"nodes": [{"id": "a", "task": "m:f", "on_failure": "h"}, {"id": "h", "task": "m:g"}]}
    )
    state = Simulation.start(plan, {}).run(random.Random(0), failing())
    assert state.status is RunStatus.SUCCEEDED
    assert state.nodes["h"].status is NodeStatus.SKIPPED


def test_a_failing_handler_fails_the_run() -> None:
    plan = plan_of(
        {"nodes": [{"id": "a", "task": "m:f", "on_failure": "h"}, {"id": "h", "task": "m:g"}]}
    )
    state = Simulation.start(plan, {}).run(random.Random(0), failing("a", "h"))
    assert state.status is RunStatus.FAILED
    assert "'h' failed" in (state.reason or "")


def test_compensations_run_in_reverse_completion_order_with_the_outputs() -> None:
    sim = Simulation.start(plan_of(SAGA), {})
    state = sim.run(random.Random(0), failing("car"))
    assert state.status is RunStatus.FAILED
    steps = [e for e in sim.history if isinstance(e, NodeScheduled) and ":" in e.node]
    assert [e.node for e in steps] == ["compensate:hotel", "compensate:flight"]
    assert steps[0].args == {"output": {"done": "hotel"}}
    order = kinds(sim.history, RunFailing, RunFailed, NodeSucceeded)
    assert order[-4:] == [
        ("RunFailing", "car"), ("NodeSucceeded", "compensate:hotel"),
        ("NodeSucceeded", "compensate:flight"), ("RunFailed", "car"),
    ]  # fmt: skip
    (failed,) = [e for e in sim.history if isinstance(e, RunFailed)]
    assert failed.compensation_failed == []


def test_a_failed_compensation_is_recorded_and_the_others_still_run() -> None:
    retried = {"task": "m:cancel", "retry": {"max_attempts": 3, "initial_backoff": 0}}
    saga = {"nodes": [SAGA["nodes"][0], {**SAGA["nodes"][1], "compensate": retried},
                      SAGA["nodes"][2]]}  # fmt: skip
    sim = Simulation.start(plan_of(saga), {})
    state = sim.run(random.Random(0), failing("car", "compensate:hotel"))
    assert state.status is RunStatus.FAILED
    tries = [e for e in sim.history if isinstance(e, NodeFailed) and e.node == "compensate:hotel"]
    assert [e.attempt for e in tries] == [1, 2, 3]  # its own retry policy
    assert state.nodes["compensate:flight"].status is NodeStatus.SUCCEEDED
    (failed,) = [e for e in sim.history if isinstance(e, RunFailed)]
    assert failed.compensation_failed == ["hotel"]
    assert "compensation failed for hotel" in failed.reason


def test_the_run_failure_handler_runs_last_with_what_happened() -> None:
    sim = Simulation.start(plan_of({**SAGA, "on_failure": "m:alert"}), {})
    sim.run(random.Random(0), failing("car"))
    scheduled = [e.node for e in sim.history if isinstance(e, NodeScheduled)]
    assert scheduled[-1] == "run:on_failure"
    (alert,) = [e for e in sim.history if isinstance(e, NodeScheduled) and e.node.startswith("run")]
    failure = alert.args["failure"]
    assert failure["node"] == "car"
    assert failure["error"]["type"] == "Boom"
    assert [c["node"] for c in failure["compensations"]] == ["flight", "hotel"]
    assert {c["status"] for c in failure["compensations"]} == {"succeeded"}


def record(state: RunState, *events: Event) -> list[Event]:
    for event in events:
        apply(state, event)
    return list(events) + decide(state, 0.0)


def test_a_failing_run_waits_for_running_attempts_and_withdraws_queued_ones() -> None:
    plan = plan_of(
        {
            "nodes": [
                {"id": "a", "task": "m:f", "compensate": "m:undo"},
                {"id": "b", "task": "m:f"},
                {"id": "c", "task": "m:f"},
            ]
        }
    )
    state = RunState.new(plan, "r")
    history = record(state, RunStarted(workflow="t", spec_version="v", input={}))
    error = ErrorInfo(type="Boom", message="no")
    history += record(
        state,
        NodeStarted(node="a", attempt=1, worker="w"),
        NodeStarted(node="b", attempt=1, worker="w"),
        NodeFailed(node="b", attempt=1, error=error),
    )
    assert state.status is RunStatus.FAILING
    assert [(type(e).__name__, getattr(e, "node", "")) for e in history[-2:]] == [
        ("RunFailing", "b"), ("NodeWithdrawn", "c"),
    ]  # fmt: skip
    # a is still running: nothing is compensated yet; when it succeeds, it is undone
    assert not any(isinstance(e, NodeScheduled) and e.node == "compensate:a" for e in history)
    follow = record(state, NodeSucceeded(node="a", attempt=1, output=1))
    assert [(type(e).__name__, getattr(e, "node", "")) for e in follow[1:]] == [
        ("NodeScheduled", "compensate:a"),
    ]
    follow = record(state, NodeSucceeded(node="compensate:a", attempt=1, output=None))
    assert isinstance(follow[-1], RunFailed)
    assert state.nodes["c"].status is NodeStatus.WITHDRAWN


def test_a_passed_deadline_fails_the_run_or_starts_its_failure_path() -> None:
    for data, expected in (({"nodes": [{"id": "a", "task": "m:f"}]}, RunFailed),
                           (SAGA, RunFailing)):  # fmt: skip
        state = RunState.new(plan_of({**data, "deadline": 60}), "r")
        record(state, RunStarted(workflow="t", spec_version="v", input={}))
        follow = record(state, RunDeadlineExceeded(deadline=60))
        assert isinstance(follow[1], expected)
        assert "deadline (60 s)" in follow[1].reason  # type: ignore[attr-defined]


def test_a_manual_retry_reruns_failed_nodes_only_with_new_attempt_numbers() -> None:
    plan = plan_of(
        {
            "nodes": [
                {"id": "a", "task": "m:f"},
                {"id": "b", "task": "m:f", "after": ["a"], "retry": {"max_attempts": 2,
                                                                      "initial_backoff": 0}},
                {"id": "c", "task": "m:f", "after": ["b"]},
            ]
        }
    )  # fmt: skip
    sim = Simulation.start(plan, {})
    assert sim.run(random.Random(0), failing("b")).status is RunStatus.FAILED
    sim.record([RunRetried(by="ana", nodes=["b", "c"])])
    assert sim.state.status is RunStatus.RUNNING
    state = sim.run(random.Random(0), failing())
    assert state.status is RunStatus.SUCCEEDED
    scheduled = [(e.node, e.attempt) for e in sim.history if isinstance(e, NodeScheduled)]
    assert scheduled == [("a", 1), ("b", 1), ("b", 2), ("b", 3), ("c", 1)]
    replay = replayed(sim)
    assert (replay.status, replay.nodes["b"].attempt) == (RunStatus.SUCCEEDED, 3)


def test_set_by_hand_gives_the_node_an_output_and_the_run_goes_on() -> None:
    plan = plan_of(
        {
            "nodes": [
                {"id": "a", "task": "m:f"},
                {"id": "b", "task": "m:f", "args": {"x": "${{ nodes.a.output }}"}},
            ],
            "outputs": {"result": "nodes.b.output"},
        }
    )
    sim = Simulation.start(plan, {})
    assert sim.run(random.Random(0), failing("a")).status is RunStatus.FAILED
    sim.record(
        [RunRetried(by="ana", nodes=["a", "b"]), NodeSetByHand(node="a", output=7, by="ana")]
    )
    state = sim.run(random.Random(0), lambda node, args, attempt: args["x"] * 2)
    assert state.status is RunStatus.SUCCEEDED
    assert state.output == {"result": 14}


def test_a_compensated_run_replays_to_the_same_state() -> None:
    sim = Simulation.start(plan_of({**SAGA, "on_failure": "m:alert"}), {})
    live = sim.run(random.Random(3), failing("car", "compensate:flight"))
    replay = replayed(sim)
    assert (replay.status, replay.reason, replay.ended) == (live.status, live.reason, live.ended)
    assert {k: n.status for k, n in replay.nodes.items()} == {
        k: n.status for k, n in live.nodes.items()
    }
    assert not [e for e in sim.history if isinstance(e, NodeWithdrawn)]


def test_process_isolation_of_an_async_task_is_refused_with_a_reason() -> None:
    from keel.errors import SpecError
    from keel.spec import check

    spec = parse_spec(
        {"name": "t", "nodes": [{"id": "a", "task": "tests.unit.runtime_tasks:async_add",
                                 "args": {"a": 1, "b": 2}, "isolation": "process"}]}
    )  # fmt: skip
    with pytest.raises(SpecError, match="isolation 'process' is for sync tasks"):
        check(spec, resolve_tasks=True)


def test_a_handler_must_name_a_node_of_the_workflow() -> None:
    from keel.errors import SpecError
    from keel.spec import check

    spec = parse_spec({"name": "t", "nodes": [{"id": "a", "task": "m:f", "on_failure": "nope"}]})
    with pytest.raises(SpecError, match="unknown handler node 'nope'"):
        check(spec)

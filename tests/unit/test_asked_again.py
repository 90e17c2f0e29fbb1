"""A task's attempt that asks a person a second time, in a state rebuilt from the
history (as a worker that did not make the first decision rebuilds it): the first
decision must not answer the second question. Pure engine."""

from __future__ import annotations

from keel.engine import NodeStatus
from keel.engine.decide import decide
from keel.engine.events import ApprovalDecided, NodeAwaiting, NodeScheduled, NodeStarted
from keel.engine.state import RunState, apply
from tests.unit.test_waits_engine import Run


def _ask(key: str) -> dict[str, object]:
    return {"title": "Allow?", "description": "", "assignees": [], "role": None, "form": None,
            "asked": key, "data": None}  # fmt: skip


def test_a_second_question_waits_for_its_own_answer_after_a_replay() -> None:
    run = Run([{"id": "a", "task": "m:a"}])
    run.start()
    run.step(NodeStarted(node="a", attempt=1, worker="w"))
    run.step(NodeAwaiting(node="a", attempt=1, waits_for="approval", details=_ask("first")))
    run.step(ApprovalDecided(node="a", approved=True, by="ann"))
    # another process rebuilds the state from the history, then the attempt asks again
    state = RunState.new(run.plan, run.state.run_id)
    for event in run.history:
        apply(state, event)
    apply(state, NodeStarted(node="a", attempt=2, worker="w"))
    apply(state, NodeAwaiting(node="a", attempt=2, waits_for="approval", details=_ask("second")))
    assert decide(state, 0.0) == []
    assert state.nodes["a"].status is NodeStatus.AWAITING
    # its own answer lets it run again, with both answers
    apply(state, ApprovalDecided(node="a", approved=True, by="bo"))
    (scheduled,) = decide(state, 0.0)
    assert isinstance(scheduled, NodeScheduled)
    assert scheduled.attempt == 3
    assert [a["key"] for a in scheduled.args["approvals"]] == ["first", "second"]

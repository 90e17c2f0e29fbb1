"""A task's attempt that asks a person (``keel.ApprovalNeeded``): the node waits like an
approval node, holds no slot, and runs again (a new attempt, the answer in its
``approvals`` argument) when approved, or fails when rejected. And a failed attempt
told ``Retry-After`` is not retried sooner. Pure engine: events in, decisions out."""

from __future__ import annotations

from typing import Any

from keel.engine import ErrorInfo, NodeFailed, NodeScheduled, NodeStatus, from_data, to_data
from keel.engine.events import ApprovalDecided, NodeAwaiting, NodeStarted, RunStarted
from keel.engine.state import RunStatus
from tests.unit.test_waits_engine import Run

ASK = {"title": "LLM budget reached", "description": "", "assignees": ["ops"], "role": None,
       "form": None, "asked": "budget:run:1", "data": {"spent": 5}}  # fmt: skip


def _asking_run() -> tuple[Run, dict[str, Any]]:
    run = Run([{"id": "a", "task": "m:a", "args": {"x": 1}}, {"id": "b", "task": "m:b",
               "args": {"y": "${{ nodes.a.output }}"}}])  # fmt: skip
    scheduled = run.start()
    assert [type(e).__name__ for e in scheduled] == ["NodeScheduled"]
    run.step(NodeStarted(node="a", attempt=1, worker="w"))
    decided = run.step(NodeAwaiting(node="a", attempt=1, waits_for="approval", details=ASK))
    return run, {"decided": decided}


def test_an_attempt_that_asks_waits_and_holds_no_slot() -> None:
    run, seen = _asking_run()
    assert seen["decided"] == []
    assert run.status("a") is NodeStatus.AWAITING
    assert run.state.out == 0  # the attempt ended: nothing runs while a person decides
    assert run.state.status is RunStatus.RUNNING


def test_approved_it_runs_again_with_the_answer_in_its_arguments() -> None:
    run, _ = _asking_run()
    decided = run.step(ApprovalDecided(node="a", approved=True, by="ann", data={"extra": 2.5}))
    assert decided == [NodeScheduled(node="a", attempt=2, args={
        "x": 1, "approvals": [{"key": "budget:run:1", "by": "ann", "data": {"extra": 2.5},
                               "comment": ""}]})]  # fmt: skip
    assert run.state.out == 1
    # asked again and approved again: the answers add up, in order
    run.step(NodeStarted(node="a", attempt=2, worker="w"))
    again = {**ASK, "asked": "budget:run:2"}
    run.step(NodeAwaiting(node="a", attempt=2, waits_for="approval", details=again))
    decided = run.step(ApprovalDecided(node="a", approved=True, by="bo", data={"extra": 1}))
    assert [answer["by"] for answer in decided[0].args["approvals"]] == ["ann", "bo"]  # type: ignore[attr-defined]
    assert decided[0].args["x"] == 1  # type: ignore[attr-defined]


def test_rejected_it_fails_and_the_run_fails() -> None:
    run, _ = _asking_run()
    decided = run.step(ApprovalDecided(node="a", approved=False, by="ann", comment="too dear"))
    assert isinstance(decided[0], NodeFailed)
    assert decided[0].error.type == "Rejected"
    assert "too dear" in decided[0].error.message
    run.step(*decided)
    assert run.status("a") is NodeStatus.FAILED


def test_retry_after_holds_the_next_attempt_back() -> None:
    run = Run([{"id": "a", "task": "m:a", "retry": {"max_attempts": 3, "initial_backoff": 1,
                                                     "jitter": 0}}])  # fmt: skip
    run.start(now=100.0)
    run.step(NodeStarted(node="a", attempt=1, worker="w"), now=100.0)
    told = ErrorInfo(type="RetryLater", message="429", retryable=True, retry_after=30.0)
    decided = run.step(NodeFailed(node="a", attempt=1, error=told), now=101.0)
    assert decided == [NodeScheduled(node="a", attempt=2, args={}, not_before=131.0)]
    # without it, the backoff alone (1 s)
    plain = ErrorInfo(type="Boom", message="x", retryable=True)
    run.step(NodeStarted(node="a", attempt=2, worker="w"), now=131.0)
    decided = run.step(NodeFailed(node="a", attempt=2, error=plain), now=132.0)
    assert decided[0].not_before == 134.0  # type: ignore[attr-defined]


def test_retry_after_survives_the_round_trip_and_is_left_out_when_unset() -> None:
    told = NodeFailed(node="a", attempt=1, error=ErrorInfo(type="T", message="m",
                                                          retry_after=2.5))  # fmt: skip
    assert from_data(to_data(told)) == told
    plain = NodeFailed(node="a", attempt=1, error=ErrorInfo(type="T", message="m"))
    assert "retry_after" not in to_data(plain)["error"]  # type: ignore[operator]
    assert from_data(to_data(plain)) == plain
    assert RunStarted  # imported for the reader: runs start as in test_waits_engine

"""The pure engine for nodes that wait: approvals, timers, signals and child runs, and
pausing a run. Each test builds a spec from data, feeds events to ``apply`` and checks
what ``decide`` returns and the state it leaves; no store, no clock, no threads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from keel.engine import (
    ErrorInfo,
    Event,
    NodeFailed,
    NodeScheduled,
    NodeSkipped,
    NodeStarted,
    NodeStatus,
    NodeSucceeded,
    RunCompleted,
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
    ApprovalDecided,
    ApprovalOverdue,
    ChildRunEnded,
    NodeAwaiting,
    RunFailing,
    RunPaused,
    RunRetried,
    RunUnpaused,
    SignalReceived,
    TimerFired,
)
from keel.engine.waits import child_run_id
from keel.errors import SpecError
from keel.spec import check, parse_spec

RUN_ID = "run-1"
CHILD_VERSION = "0123456789abcdef" * 4
BOOM = ErrorInfo(type="Boom", message="it broke", retryable=False)


class Run:
    """One run driven by hand: each ``step`` records its causes, decides at ``now`` and
    records what was decided, so ``history`` is what a store would hold."""

    def __init__(self, nodes: list[dict[str, Any]], run_id: str = RUN_ID, **workflow: Any):
        spec = check(parse_spec({"name": "w", "nodes": nodes, **workflow}))
        self.plan = compile_plan(spec)
        self.state = RunState.new(self.plan, run_id)
        self.history: list[Event] = []

    def step(self, *causes: Event, now: float = 0.0) -> list[Event]:
        for cause in causes:
            apply(self.state, cause)
        decided = decide(self.state, now)
        self.history += [*causes, *decided]
        return decided

    def start(self, now: float = 0.0, **run_input: Any) -> list[Event]:
        return self.step(RunStarted(workflow="w", spec_version="v", input=run_input), now=now)

    def status(self, node: str) -> NodeStatus:
        return self.state.nodes[node].status


def brief(events: list[Event]) -> list[tuple[str, str]]:
    """Events as (class name, node), enough to check what happened in which order."""
    return [(type(event).__name__, getattr(event, "node", "")) for event in events]


def only(events: list[Event], kind: type[Event], node: str | None = None) -> Any:
    found = [e for e in events if isinstance(e, kind) and node in (None, getattr(e, "node", None))]
    assert len(found) == 1, f"expected one {kind.__name__} for {node}, got {brief(events)}"
    return found[0]


def succeeded(node: str, output: Any = None, attempt: int = 1) -> NodeSucceeded:
    return NodeSucceeded(node=node, attempt=attempt, output=output)


def approve(node: str, by: str = "ann", data: Any = None) -> ApprovalDecided:
    return ApprovalDecided(node=node, approved=True, by=by, data=data)


def reject(node: str, by: str = "bob", comment: str = "") -> ApprovalDecided:
    return ApprovalDecided(node=node, approved=False, by=by, comment=comment)


def approval(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "kind": "approval", "title": f"Check {node_id}", **fields}


# --- approvals: opening ---------------------------------------------------------------------


def test_an_approval_opens_after_what_it_reads_with_its_description_filled_in() -> None:
    run = Run(
        [
            {"id": "score", "task": "m:score"},
            approval(
                "review",
                description="Claim ${{ input.claim }} scored ${{ nodes.score.output.value }} "
                "(flags: ${{ nodes.score.output.flags }})",
                assignees=["ann", "team:claims"],
                role="adjuster",
                timeout="1h",
            ),
        ]
    )
    # the description reads score's output: that alone makes score a parent
    assert brief(run.start(claim="C-7")) == [("NodeScheduled", "score")]
    assert run.status("review") is NodeStatus.WAITING

    output = {"value": 0.93, "flags": ["late", "big"]}
    opened = only(run.step(succeeded("score", output), now=100.0), NodeAwaiting, "review")
    assert (opened.attempt, opened.waits_for, opened.until) == (1, "approval", 3700.0)
    assert opened.details["description"] == 'Claim C-7 scored 0.93 (flags: ["late", "big"])'
    assert opened.details["title"] == "Check review"
    assert opened.details["assignees"] == ["ann", "team:claims"]
    assert opened.details["role"] == "adjuster"
    assert "error" not in opened.details
    assert run.status("review") is NodeStatus.AWAITING
    assert run.state.nodes["review"].until == 3700.0


def test_an_approval_without_a_timeout_has_no_until() -> None:
    run = Run([approval("review")])
    opened = only(run.start(now=50.0), NodeAwaiting, "review")
    assert opened.until is None


def test_a_waiting_approval_holds_no_slot_under_max_parallel() -> None:
    run = Run(
        [{"id": "a", "task": "m:f"}, approval("review"), {"id": "b", "task": "m:f"}],
        max_parallel=1,
    )
    # a takes the one slot; the approval opens all the same, b waits for the slot
    assert brief(run.start()) == [("NodeScheduled", "a"), ("NodeAwaiting", "review")]
    assert run.state.out == 1
    assert brief(run.step(succeeded("a"))) == [("NodeScheduled", "b")]
    assert brief(run.step(approve("review"))) == [("NodeSucceeded", "review")]
    assert run.state.out == 1  # ending the approval did not free a slot it never held
    assert brief(run.step(succeeded("b"))) == [("RunCompleted", "")]
    assert run.state.out == 0


# --- approvals: decisions -------------------------------------------------------------------


def test_approving_makes_the_data_the_output_and_runs_the_children() -> None:
    run = Run(
        [
            approval("review", form={"type": "object", "properties": {"amount": {}}}),
            {"id": "pay", "task": "m:pay", "args": {"amount": "${{ nodes.review.output.amount }}"}},
        ],
        outputs={"decision": "nodes.review.output"},
    )
    run.start()
    decided = run.step(approve("review", data={"amount": 250}))
    assert only(decided, NodeSucceeded, "review").output == {"amount": 250}
    assert only(decided, NodeScheduled, "pay").args == {"amount": 250}
    run.step(succeeded("pay"))
    assert run.state.status is RunStatus.SUCCEEDED
    assert run.state.output == {"decision": {"amount": 250}}


def test_approving_without_data_gives_an_empty_object() -> None:
    run = Run([approval("review")])
    run.start()
    assert only(run.step(approve("review")), NodeSucceeded, "review").output == {}


def test_a_rejection_fails_the_node_naming_who_and_why_and_by_default_the_run() -> None:
    run = Run([approval("review"), {"id": "pay", "task": "m:pay", "after": ["review"]}])
    run.start()
    decided = run.step(reject("review", by="bob", comment="too expensive"))
    failed = only(decided, NodeFailed, "review")
    assert failed.error.type == "Rejected"
    assert "bob" in failed.error.message
    assert "too expensive" in failed.error.message
    assert not failed.error.retryable
    run_failed = only(decided, RunFailed)
    assert run_failed.node == "review"
    assert "Rejected" in run_failed.reason
    assert run.state.status is RunStatus.FAILED
    assert not [e for e in run.history if isinstance(e, NodeScheduled) and e.node == "pay"]


def test_a_rejection_with_on_failure_continue_lets_the_run_go_on() -> None:
    run = Run(
        [
            approval("review", on_failure="continue"),
            {"id": "pay", "task": "m:pay", "after": ["review"]},
            {"id": "log", "task": "m:log", "after": ["review"], "join": "all_done"},
        ]
    )
    run.start()
    decided = run.step(reject("review", comment="no"))
    assert brief(decided) == [
        ("NodeFailed", "review"), ("NodeSkipped", "pay"), ("NodeScheduled", "log"),
    ]  # fmt: skip
    assert run.status("pay") is NodeStatus.UPSTREAM_FAILED
    assert brief(run.step(succeeded("log"))) == [("RunCompleted", "")]


def test_a_rejection_routed_to_a_handler_gives_it_the_error() -> None:
    run = Run([approval("review", on_failure="tell"), {"id": "tell", "task": "m:tell"}])
    run.start()
    scheduled = only(run.step(reject("review", by="bob", comment="no")), NodeScheduled, "tell")
    assert scheduled.args["error"]["type"] == "Rejected"
    assert scheduled.args["error"]["node"] == "review"
    assert run.state.status is RunStatus.RUNNING


# --- approvals: timeouts --------------------------------------------------------------------


def test_an_approval_timeout_rejects_by_default() -> None:
    run = Run([approval("review", timeout="1h")])
    run.start()
    decided = run.step(TimerFired(node="review", attempt=1), now=3600.0)
    failed = only(decided, NodeFailed, "review")
    assert failed.error.type == "ApprovalTimeout"
    assert "3600 s" in failed.error.message
    assert isinstance(decided[-1], RunFailed)


def test_an_approval_timeout_can_approve_as_keel() -> None:
    run = Run(
        [
            approval("review", timeout="10m", on_timeout="approve"),
            {"id": "pay", "task": "m:pay", "after": ["review"]},
        ]
    )
    run.start()
    decided = run.step(TimerFired(node="review", attempt=1), now=600.0)
    assert brief(decided) == [
        ("ApprovalDecided", "review"), ("NodeSucceeded", "review"), ("NodeScheduled", "pay"),
    ]  # fmt: skip
    decision = decided[0]
    assert isinstance(decision, ApprovalDecided)
    assert (decision.approved, decision.by, decision.data) == (True, "keel", {})
    assert only(decided, NodeSucceeded, "review").output == {}


def test_an_overdue_approval_with_notify_goes_on_waiting_and_can_still_be_decided() -> None:
    run = Run([approval("review", timeout="1h", on_timeout="notify")])
    run.start()
    decided = run.step(TimerFired(node="review", attempt=1), now=3600.0)
    assert decided == [ApprovalOverdue(node="review", timeout=3600.0)]
    assert run.status("review") is NodeStatus.AWAITING
    assert run.state.nodes["review"].until is None  # no second reminder
    assert run.state.status is RunStatus.RUNNING

    later = run.step(approve("review", data={"ok": True}), now=9000.0)
    assert only(later, NodeSucceeded, "review").output == {"ok": True}
    assert isinstance(later[-1], RunCompleted)


def test_an_overdue_approval_is_told_once_even_by_a_process_that_reloads_the_run() -> None:
    """``keel pause`` or ``keel approve`` of another process rebuilds the run from its
    history (apply only, no decide) and then decides: the timer that made the approval
    overdue is spent, so it must not tell the approvers again."""
    run = Run([approval("review", timeout="1h", on_timeout="notify")])
    run.start()
    assert run.step(TimerFired(node="review", attempt=1), now=3600.0) == [
        ApprovalOverdue(node="review", timeout=3600.0)
    ]

    reloaded = RunState.new(run.plan, RUN_ID)
    for event in run.history:
        apply(reloaded, event)

    assert decide(reloaded, 7200.0) == []
    assert reloaded.nodes["review"].status is NodeStatus.AWAITING


def test_a_timeout_routed_to_a_task_runs_it_with_the_error_and_the_run_does_not_fail() -> None:
    run = Run(
        [
            approval("review", timeout="1h", on_timeout="escalate"),
            {"id": "pay", "task": "m:pay", "after": ["review"]},
            {"id": "escalate", "task": "m:page", "args": {"to": "boss"}},
        ]
    )
    assert brief(run.start()) == [("NodeAwaiting", "review")]
    decided = run.step(TimerFired(node="review", attempt=1), now=3600.0)
    assert only(decided, NodeFailed, "review").error.type == "ApprovalTimeout"
    escalated = only(decided, NodeScheduled, "escalate")
    assert escalated.args["to"] == "boss"
    error = escalated.args["error"]
    assert (error["node"], error["type"], error["attempts"]) == ("review", "ApprovalTimeout", 1)
    assert not [e for e in decided if isinstance(e, RunFailed | RunFailing)]
    assert run.status("pay") is NodeStatus.UPSTREAM_FAILED
    assert isinstance(run.step(succeeded("escalate"))[-1], RunCompleted)
    assert run.state.status is RunStatus.SUCCEEDED


def test_a_timeout_routed_to_another_approval_opens_it_with_the_error() -> None:
    run = Run([approval("review", timeout="1h", on_timeout="manager"), approval("manager")])
    run.start()
    opened = only(run.step(TimerFired(node="review", attempt=1)), NodeAwaiting, "manager")
    assert opened.details["error"]["type"] == "ApprovalTimeout"
    assert opened.details["error"]["node"] == "review"


def test_the_timeout_route_is_skipped_when_the_approval_is_decided_in_time() -> None:
    run = Run([approval("review", timeout="1h", on_timeout="escalate"),
               {"id": "escalate", "task": "m:page"}])  # fmt: skip
    run.start()
    decided = run.step(approve("review"))
    assert only(decided, NodeSkipped, "escalate")
    assert isinstance(decided[-1], RunCompleted)


def test_a_rejection_of_a_routed_approval_does_not_start_the_route_and_fails_the_run() -> None:
    run = Run([approval("review", timeout="1h", on_timeout="escalate"),
               {"id": "escalate", "task": "m:page"}])  # fmt: skip
    run.start()
    decided = run.step(reject("review", comment="no"))
    assert only(decided, NodeFailed, "review").error.type == "Rejected"
    assert only(decided, RunFailed).node == "review"
    assert not [e for e in run.history if getattr(e, "node", "") == "escalate"]
    assert run.status("escalate") is NodeStatus.WAITING


def test_a_stale_timer_of_an_earlier_attempt_is_ignored() -> None:
    run = Run([approval("review", timeout="1h")])
    run.start()
    run.step(reject("review"))
    assert run.state.status is RunStatus.FAILED
    reopened = only(run.step(RunRetried(by="ann", nodes=["review"]), now=10.0), NodeAwaiting)
    assert (reopened.attempt, reopened.until) == (2, 3610.0)
    assert run.step(TimerFired(node="review", attempt=1)) == []  # the first opening's timer
    assert run.status("review") is NodeStatus.AWAITING
    failed = only(run.step(TimerFired(node="review", attempt=2)), NodeFailed, "review")
    assert (failed.attempt, failed.error.type) == (2, "ApprovalTimeout")


# --- timers ---------------------------------------------------------------------------------


def test_a_duration_timer_fires_after_its_duration_and_gives_its_time() -> None:
    run = Run([{"id": "t", "kind": "timer", "duration": "2m"}, {"id": "b", "task": "m:f",
                                                               "after": ["t"]}])  # fmt: skip
    opened = only(run.start(now=1000.0), NodeAwaiting, "t")
    assert (opened.waits_for, opened.until) == ("timer", 1120.0)
    assert opened.details == {"until": "1970-01-01T00:18:40+00:00"}
    assert run.step(TimerFired(node="t", attempt=2), now=1120.0) == []
    assert run.step(TimerFired(node="t", attempt=0), now=1120.0) == []
    assert run.status("t") is NodeStatus.AWAITING
    decided = run.step(TimerFired(node="t", attempt=1), now=1120.0)
    assert brief(decided) == [("NodeSucceeded", "t"), ("NodeScheduled", "b")]
    assert only(decided, NodeSucceeded, "t").output == "1970-01-01T00:18:40+00:00"


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2030-01-02T03:04:05+02:00", datetime(2030, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),  # no zone: UTC
        (1_893_553_445, datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (1_893_553_445.5, datetime(2030, 1, 2, 3, 4, 5, 500_000, tzinfo=UTC)),
    ],
)
def test_a_timer_until_an_expression_waits_until_that_moment(at: Any, expected: datetime) -> None:
    run = Run([{"id": "t", "kind": "timer", "until": "input.at"}])
    opened = only(run.start(now=5.0, at=at), NodeAwaiting, "t")
    assert opened.until == expected.timestamp()
    assert opened.details["until"] == expected.isoformat()
    assert run.state.nodes["t"].until == expected.timestamp()


@pytest.mark.parametrize("at", ["next tuesday", True, {"at": 1}, None])
def test_a_timer_until_a_bad_value_fails_the_node_with_an_expression_error(at: Any) -> None:
    run = Run([{"id": "t", "kind": "timer", "until": "input.at"}])
    decided = run.start(at=at)
    failed = only(decided, NodeFailed, "t")
    assert failed.error.type == "ExpressionError"
    assert not failed.error.retryable
    assert "until" in failed.error.message
    assert not [e for e in decided if isinstance(e, NodeAwaiting)]
    assert isinstance(decided[-1], RunFailed)


@pytest.mark.parametrize("at", [1e20, "9999-12-31T23:59:59-05:00"])
def test_a_timer_until_a_moment_out_of_range_fails_the_node(at: Any) -> None:
    run = Run([{"id": "t", "kind": "timer", "until": "input.at"}])
    failed = only(run.start(at=at), NodeFailed, "t")
    assert failed.error.type == "ExpressionError"


# --- signals --------------------------------------------------------------------------------


def test_a_signal_sent_before_the_node_is_reached_is_kept_for_it() -> None:
    run = Run(
        [
            {"id": "a", "task": "m:f"},
            {"id": "sig", "kind": "signal", "signal": "go", "after": ["a"]},
            {"id": "b", "task": "m:f", "args": {"x": "${{ nodes.sig.output.x }}"}},
        ]
    )
    run.start()
    assert run.step(SignalReceived(name="go", data={"x": 1}, by="ann")) == []
    assert run.step(SignalReceived(name="other", data={"x": 2})) == []
    assert list(run.state.signals["go"]) == [{"x": 1}]
    decided = run.step(succeeded("a"))
    assert brief(decided) == [
        ("NodeAwaiting", "sig"), ("NodeSucceeded", "sig"), ("NodeScheduled", "b"),
    ]  # fmt: skip
    assert only(decided, NodeAwaiting, "sig").details == {"signal": "go"}
    assert only(decided, NodeSucceeded, "sig").output == {"x": 1}
    assert only(decided, NodeScheduled, "b").args == {"x": 1}
    assert not run.state.signals["go"]  # taken
    assert list(run.state.signals["other"]) == [{"x": 2}]  # still kept


def test_two_early_signals_of_one_name_feed_two_nodes_in_order() -> None:
    run = Run(
        [
            {"id": "a", "task": "m:f"},
            {"id": "first", "kind": "signal", "signal": "go", "after": ["a"]},
            {"id": "second", "kind": "signal", "signal": "go", "after": ["first"]},
        ]
    )
    run.start()
    run.step(SignalReceived(name="go", data=1), SignalReceived(name="go", data=2))
    run.step(succeeded("a"))
    assert run.state.nodes["first"].output == 1
    assert run.state.nodes["second"].output == 2
    assert run.state.status is RunStatus.SUCCEEDED


def test_one_signal_ends_only_one_of_two_waiting_nodes() -> None:
    run = Run(
        [
            {"id": "first", "kind": "signal", "signal": "go"},
            {"id": "second", "kind": "signal", "signal": "go"},
        ]
    )
    assert brief(run.start()) == [("NodeAwaiting", "first"), ("NodeAwaiting", "second")]
    decided = run.step(SignalReceived(name="go", data="one"))
    assert decided == [NodeSucceeded(node="first", attempt=1, output="one")]
    assert run.status("second") is NodeStatus.AWAITING
    decided = run.step(SignalReceived(name="go", data="two"))
    assert brief(decided) == [("NodeSucceeded", "second"), ("RunCompleted", "")]
    assert run.state.nodes["second"].output == "two"


def test_a_signal_that_does_not_come_in_time_fails_the_node() -> None:
    run = Run([{"id": "sig", "kind": "signal", "signal": "go", "timeout": "5m"}])
    opened = only(run.start(now=100.0), NodeAwaiting, "sig")
    assert opened.until == 400.0
    decided = run.step(TimerFired(node="sig", attempt=1), now=400.0)
    failed = only(decided, NodeFailed, "sig")
    assert failed.error.type == "SignalTimeout"
    assert "'go'" in failed.error.message
    assert "300 s" in failed.error.message
    assert isinstance(decided[-1], RunFailed)


# --- child runs -----------------------------------------------------------------------------


def child_spec() -> list[dict[str, Any]]:
    return [
        {"id": "a", "task": "m:f"},
        {
            "id": "child",
            "kind": "subworkflow",
            "workflow": "kid",
            "version": CHILD_VERSION,
            "input": {"claim": "${{ nodes.a.output.claim }}", "region": "eu"},
        },
        {"id": "b", "task": "m:f", "args": {"total": "${{ nodes.child.output.total }}"}},
    ]


def open_child(run_id: str = RUN_ID) -> tuple[Run, NodeAwaiting]:
    run = Run(child_spec(), run_id=run_id)
    run.start()
    return run, only(run.step(succeeded("a", {"claim": "C-7"})), NodeAwaiting, "child")


def test_a_subworkflow_waits_for_a_child_run_with_a_derived_id_and_evaluated_input() -> None:
    run, opened = open_child()
    assert opened.waits_for == "subworkflow"
    assert opened.until is None
    assert opened.details["input"] == {"claim": "C-7", "region": "eu"}
    assert (opened.details["workflow"], opened.details["version"]) == ("kid", CHILD_VERSION)
    assert opened.details["run_id"] == child_run_id(RUN_ID, "child", 1)
    # the same run, node and attempt name the same child; anything else another one
    assert open_child()[1].details["run_id"] == opened.details["run_id"]
    assert open_child("run-2")[1].details["run_id"] != opened.details["run_id"]
    assert child_run_id(RUN_ID, "child", 2) != opened.details["run_id"]
    assert run.status("child") is NodeStatus.AWAITING


def test_a_child_run_that_succeeds_gives_its_output() -> None:
    run, opened = open_child()
    child = opened.details["run_id"]
    ended = ChildRunEnded(node="child", run_id=child, status="succeeded", output={"total": 9})
    decided = run.step(ended)
    assert only(decided, NodeSucceeded, "child").output == {"total": 9}
    assert only(decided, NodeScheduled, "b").args == {"total": 9}


def test_a_child_run_that_fails_fails_the_node() -> None:
    run, opened = open_child()
    child = opened.details["run_id"]
    ended = ChildRunEnded(node="child", run_id=child, status="failed", reason="node 'x' failed")
    decided = run.step(ended)
    failed = only(decided, NodeFailed, "child")
    assert failed.error.type == "ChildRunFailed"
    assert "failed" in failed.error.message
    assert "node 'x' failed" in failed.error.message
    assert isinstance(decided[-1], RunFailed)


def test_the_end_of_another_child_run_is_ignored() -> None:
    run, _ = open_child()
    stranger = child_run_id(RUN_ID, "child", 7)
    ended = ChildRunEnded(node="child", run_id=stranger, status="succeeded", output={"total": 1})
    assert run.step(ended) == []
    assert run.status("child") is NodeStatus.AWAITING


# --- pausing --------------------------------------------------------------------------------


def test_a_paused_run_records_results_but_starts_nothing_until_unpaused() -> None:
    run = Run([{"id": "a", "task": "m:f"}, {"id": "b", "task": "m:f", "after": ["a"]}])
    run.start()
    assert run.step(RunPaused(by="ann", reason="look first")) == []
    assert run.state.status is RunStatus.PAUSED
    assert run.step(NodeStarted(node="a", attempt=1, worker="w"), succeeded("a", 1)) == []
    assert run.status("a") is NodeStatus.SUCCEEDED  # recorded...
    assert run.status("b") is NodeStatus.WAITING  # ...but nothing new starts
    assert run.state.status is RunStatus.PAUSED
    assert brief(run.step(RunUnpaused(by="ann"))) == [("NodeScheduled", "b")]
    assert run.state.status is RunStatus.RUNNING


def test_a_decision_during_a_pause_is_acted_on_at_unpause() -> None:
    run = Run([approval("review"), {"id": "pay", "task": "m:pay", "after": ["review"]}])
    run.start()
    run.step(RunPaused(by="ann"))
    assert run.step(approve("review", data={"ok": 1})) == []
    assert run.status("review") is NodeStatus.AWAITING
    decided = run.step(RunUnpaused(by="ann"))
    assert brief(decided) == [("NodeSucceeded", "review"), ("NodeScheduled", "pay")]
    assert only(decided, NodeSucceeded, "review").output == {"ok": 1}


def test_a_timer_firing_during_a_pause_ends_the_wait_at_unpause() -> None:
    run = Run([{"id": "t", "kind": "timer", "duration": "1m"}])
    run.start()
    run.step(RunPaused(by="ann"))
    assert run.step(TimerFired(node="t", attempt=1), now=60.0) == []
    assert brief(run.step(RunUnpaused(by="ann"), now=90.0)) == [
        ("NodeSucceeded", "t"), ("RunCompleted", ""),
    ]  # fmt: skip


# --- replay ---------------------------------------------------------------------------------


def replay(run: Run, upto: int | None = None) -> RunState:
    state = RunState.new(run.plan, run.state.run_id)
    for event in run.history[:upto]:
        apply(state, from_data(to_data(event)))
    return state


def snapshot(state: RunState) -> tuple[Any, ...]:
    nodes = {k: (n.status, n.output, n.attempt, n.until) for k, n in state.nodes.items()}
    signals = {name: list(kept) for name, kept in state.signals.items()}
    return state.status, state.output, state.reason, state.out, nodes, signals


def test_replaying_a_history_with_waits_and_a_pause_gives_the_same_state() -> None:
    run = Run(
        [
            {"id": "a", "task": "m:f"},
            approval("review", description="a gave ${{ nodes.a.output }}", timeout="1h",
                     on_timeout="approve"),
            {"id": "sig", "kind": "signal", "signal": "go", "after": ["review"]},
            {"id": "t", "kind": "timer", "duration": "2m", "after": ["sig"]},
            {"id": "b", "task": "m:f", "args": {"s": "${{ nodes.sig.output }}"}, "after": ["t"]},
        ],
        outputs={"b": "nodes.b.output", "review": "nodes.review.output"},
    )  # fmt: skip
    steps: list[tuple[tuple[Event, ...], float]] = [
        ((RunStarted(workflow="w", spec_version="v", input={}),), 0.0),
        ((SignalReceived(name="go", data={"k": 1}),), 1.0),
        ((NodeStarted(node="a", attempt=1, worker="w"), RunPaused(by="ann")), 2.0),
        ((succeeded("a", 5),), 3.0),
        ((RunUnpaused(by="ann"),), 4.0),
        ((TimerFired(node="review", attempt=1),), 3604.0),
        ((TimerFired(node="t", attempt=1),), 3724.0),
        ((NodeStarted(node="b", attempt=1, worker="w"),), 3725.0),
        ((succeeded("b", "done"),), 3726.0),
    ]
    boundaries = []
    for causes, now in steps:
        run.step(*causes, now=now)
        boundaries.append((len(run.history), snapshot(run.state)))

    assert run.state.status is RunStatus.SUCCEEDED
    assert run.state.output == {"b": "done", "review": {}}
    assert run.state.nodes["sig"].output == {"k": 1}
    assert [e.by for e in run.history if isinstance(e, ApprovalDecided)] == ["keel"]
    # the state after every transition, rebuilt from the history so far, is the same
    # and has nothing left to decide
    for upto, live in boundaries:
        state = replay(run, upto)
        assert snapshot(state) == live
        assert decide(state, 99_999.0) == []
        assert snapshot(state) == live


# --- a failing run withdraws waits ------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"nodes": [{"id": "booked", "task": "m:book", "compensate": "m:cancel"}]},
        {"on_failure": "m:alert"},
    ],
    ids=["compensation", "failure handler"],
)
def test_a_run_on_its_failure_path_withdraws_a_waiting_approval(extra: dict[str, Any]) -> None:
    nodes = [approval("review"), {"id": "a", "task": "m:f"}, *extra.get("nodes", [])]
    run = Run(nodes, **{k: v for k, v in extra.items() if k != "nodes"})
    run.start()
    if "booked" in run.state.nodes:
        run.step(succeeded("booked"))
    decided = run.step(NodeFailed(node="a", attempt=1, error=BOOM))
    assert brief(decided)[:2] == [("RunFailing", "a"), ("NodeWithdrawn", "review")]
    assert run.status("review") is NodeStatus.WITHDRAWN
    # a late decision changes nothing: the approval no longer waits
    after = run.step(approve("review"))
    assert not [e for e in after if getattr(e, "node", "") == "review"]
    assert run.status("review") is NodeStatus.WITHDRAWN


def test_a_late_decision_in_a_failed_run_is_not_acted_on() -> None:
    run = Run([approval("review"), {"id": "a", "task": "m:f"}])
    run.start()
    assert isinstance(run.step(NodeFailed(node="a", attempt=1, error=BOOM))[-1], RunFailed)
    assert run.step(approve("review")) == []
    assert run.state.status is RunStatus.FAILED
    assert run.status("review") is not NodeStatus.SUCCEEDED


# --- validation -----------------------------------------------------------------------------


def refused(*nodes: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        check(parse_spec({"name": "w", "nodes": list(nodes)}))
    return str(caught.value)


@pytest.mark.parametrize(
    "timer",
    [
        {"id": "t", "kind": "timer", "duration": "1m", "until": "input.at"},
        {"id": "t", "kind": "timer"},
    ],
    ids=["both", "neither"],
)
def test_a_timer_needs_exactly_one_of_duration_and_until(timer: dict[str, Any]) -> None:
    message = refused(timer)
    assert "node 't'" in message
    assert "exactly one of 'duration' and 'until'" in message


def test_a_timeout_route_to_an_unknown_node_is_refused_naming_it() -> None:
    message = refused(approval("review", on_timeout="escalte"), {"id": "escalate", "task": "m:f"})
    assert "on_timeout routes to unknown node 'escalte'" in message
    assert "did you mean 'escalate'" in message


def test_a_timeout_route_to_the_approval_itself_is_refused() -> None:
    assert "cannot route its timeout to itself" in refused(approval("review", on_timeout="review"))


def test_an_invalid_form_or_payload_schema_is_refused() -> None:
    assert "form is not a valid JSON Schema" in refused(approval("r", form={"type": "objekt"}))
    signal = {"id": "s", "kind": "signal", "signal": "go", "payload_schema": {"type": 3}}
    assert "payload_schema is not a valid JSON Schema" in refused(signal)


def test_an_unknown_node_kind_is_refused_listing_the_kinds() -> None:
    message = refused({"id": "x", "kind": "sleep"})
    assert "unknown node kind" in message
    for kind in ("task", "map", "approval", "timer", "signal", "subworkflow"):
        assert f"'{kind}'" in message


@pytest.mark.parametrize("version", ["abc", "AB" * 32, "g" * 64, CHILD_VERSION + "0"])
def test_a_subworkflow_version_must_be_a_64_hex_digest(version: str) -> None:
    message = refused({"id": "c", "kind": "subworkflow", "workflow": "kid", "version": version})
    assert "node 'c', version" in message

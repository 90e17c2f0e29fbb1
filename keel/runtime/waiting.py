"""What a transition must write for nodes that wait: the ``waits`` listing, their timers,
child runs to create, and the runs to tell when a run with a family ends.

A wait is durable in three places, all written in the transition that opens or closes
it: the ``NodeAwaiting`` event (the truth), a row in ``waits`` (so ``keel approvals``
need not replay histories) and, when it has a time, a timer. Runs talk to each other
through timers due at once, because a timer is written in the same transaction as what
caused it and is fired by whichever worker looks next: a child's end reaches its
parent (``child:<node>``), a parent's end cancels its children (``cancel``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from keel.engine.events import (
    ApprovalDecided,
    ApprovalOverdue,
    ErrorInfo,
    Event,
    NodeAwaiting,
    NodeFailed,
    NodeSetByHand,
    NodeSucceeded,
    NodeWithdrawn,
    RunStarted,
)
from keel.engine.plan import Plan
from keel.engine.state import NodeStatus, RunState
from keel.engine.waits import CHILD_RUN_NOT_STARTED
from keel.errors import InputError, KeelError, StoreError
from keel.runtime.operations.inputs import check_input, with_defaults
from keel.runtime.tracing.context import child_run_trace, of_run
from keel.store.records import Timer, Wait
from keel.store.writes import ClearTimer, CloseWait, CreateChild, OpenWait, Transition, Write

#: timer keys: a waiting node's time (``wait:<node>``), a child's end told to its
#: parent (``child:<node>``), and a parent's end cancelling a child
CANCEL = "cancel"


def wait_timer(node: str) -> str:
    return f"wait:{node}"


def child_timer(node: str) -> str:
    return f"child:{node}"


@dataclass
class WaitWrites:
    """The parts of a ``Transition`` about waiting."""

    waits: list[Wait] = field(default_factory=list)
    clear_waits: list[str] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    clear_timers: list[str] = field(default_factory=list)
    children: list[CreateChild] = field(default_factory=list)

    def writes(self) -> list[Write]:
        """Everything but the timers set (the caller orders those with the run's own)."""
        writes: list[Write] = [OpenWait(wait) for wait in self.waits]
        writes += [CloseWait(node) for node in self.clear_waits]
        writes += [ClearTimer(key) for key in self.clear_timers]
        writes += self.children
        return writes


def _ends_wait(state: RunState, event: Event) -> str | None:
    """The waiting node an event ends, if it does. A node withdrawn or set by hand may
    have been a task's attempt waiting for the approval it asked for: its wait goes too
    (closing a wait that is not there writes nothing)."""
    ends = NodeSucceeded | NodeFailed | NodeWithdrawn | NodeSetByHand
    if isinstance(event, ends) and state.plan.nodes[event.node].wait is not None:
        return event.node
    if isinstance(event, NodeWithdrawn | NodeSetByHand):
        return event.node
    return None


def wait_writes(run_id: str, state: RunState, events: Sequence[Event], now: float) -> WaitWrites:
    """Waits opened and closed by ``events`` (already applied to ``state``)."""
    writes = WaitWrites()
    for event in events:
        if isinstance(event, NodeAwaiting):
            writes.waits.append(
                Wait(run_id, event.node, event.waits_for, now, event.until, event.details)
            )
            if event.until is not None:
                writes.timers.append(
                    Timer(run_id, wait_timer(event.node), event.until, {"attempt": event.attempt})
                )
        elif isinstance(event, ApprovalOverdue):
            writes.clear_timers.append(wait_timer(event.node))
        elif isinstance(event, ApprovalDecided):  # no longer waits for a person (a paused
            writes.clear_waits.append(event.node)  # run acts on it when unpaused)
            writes.clear_timers.append(wait_timer(event.node))
        else:
            ended = _ends_wait(state, event)
            if ended is not None:
                writes.clear_waits.append(ended)
                writes.clear_timers.append(wait_timer(ended))
                if isinstance(event, NodeWithdrawn):
                    writes.timers += _cancel_child(state, ended, now, "the parent run is failing")
    return writes


def _cancel_child(state: RunState, node_id: str, now: float, reason: str) -> list[Timer]:
    details = state.nodes[node_id].details or {}
    if state.plan.nodes[node_id].kind != "subworkflow" or "run_id" not in details:
        return []
    data = {"reason": reason, "by": f"run {state.run_id}"}
    return [Timer(str(details["run_id"]), CANCEL, now, data)]


def family_timers(state: RunState, now: float) -> list[Timer]:
    """For a run that just ended: tell its parent, and cancel its children still running."""
    timers: list[Timer] = []
    if state.parent is not None:
        data = {"run_id": state.run_id, "status": state.status.value, "output": state.output,
                "reason": state.reason}  # fmt: skip
        timers.append(Timer(state.parent["run_id"], child_timer(state.parent["node"]), now, data))
    for node_id, node in state.nodes.items():
        if node.status is NodeStatus.AWAITING:
            reason = f"the parent run {state.run_id[:8]} {state.status.value}"
            timers += _cancel_child(state, node_id, now, reason)
    return timers


def start_children(
    state: RunState,
    events: list[Event],
    now: float,
    plan_of: Callable[[str], Plan],
    advance: Callable[[str, Any, Sequence[Event], float], Transition],
) -> tuple[list[CreateChild], list[Event]]:
    """Child runs for the subworkflow nodes that began to wait, each with its first
    transition. A child that cannot start (its definition is unknown, its input does
    not fit) fails its node instead: returned as causes for another round of decisions."""
    children: list[CreateChild] = []
    refused: list[Event] = []
    for event in events:
        if not isinstance(event, NodeAwaiting) or event.waits_for != "subworkflow":
            continue
        details = event.details
        try:
            plan = plan_of(str(details["version"]))
            child_input = with_defaults(plan.spec, details["input"])
            check_input(plan.spec, child_input)
        except (InputError, StoreError, KeelError) as exc:
            error = ErrorInfo(type=CHILD_RUN_NOT_STARTED, message=str(exc), retryable=False)
            refused.append(NodeFailed(node=event.node, attempt=event.attempt, error=error))
            continue
        child_id = str(details["run_id"])
        started = RunStarted(
            workflow=plan.spec.name, spec_version=plan.spec.version, input=child_input,
            parent={"run_id": state.run_id, "node": event.node},
            trace=child_run_trace(of_run(state.trace, state.run_id), child_id).to_data(),
        )  # fmt: skip
        first = advance(child_id, RunState.new(plan, child_id), [started], now)
        children.append(CreateChild(plan.spec, child_input, first, state.run_id, event.node))
    return children, refused

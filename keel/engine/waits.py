"""Nodes that wait for something outside the run: an approval, a timer, a signal, a
child run. How a wait opens (``open_wait``) and how the event that ends it becomes the
node's success or failure (``resolve_wait``).

A wait is a ``NodeAwaiting`` event and nothing else: no attempt on the ready queue, no
worker, no thread. What ends it arrives as an event recorded in the run's history (a
decision, a signal, a timer firing, a child run's end), so a replay reaches the same
outcome, and the outcome itself is an ordinary ``NodeSucceeded`` / ``NodeFailed``: the
node's ``on_failure``, handlers and the run's failure path apply as for any node.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from keel.engine.events import (
    ApprovalDecided,
    ApprovalOverdue,
    ChildRunEnded,
    ErrorInfo,
    Event,
    NodeAwaiting,
    NodeFailed,
    NodeScheduled,
    NodeSucceeded,
    SignalReceived,
    TimerFired,
)
from keel.engine.plan import NodePlan
from keel.engine.state import NodeState, NodeStatus, RunState
from keel.errors import ExpressionError
from keel.spec.expressions import evaluate
from keel.spec.model import ApprovalNode, SignalNode, SubworkflowNode, TimerNode, WaitNode
from keel.spec.templates import fill_template

#: error types of waits that end in failure (``error.type`` for handlers and notifiers)
REJECTED = "Rejected"
APPROVAL_TIMEOUT = "ApprovalTimeout"
SIGNAL_TIMEOUT = "SignalTimeout"
CHILD_RUN_FAILED = "ChildRunFailed"
#: a child run that could not start (unknown definition, input that does not fit): the
#: runtime fails its node with this type, as a cause of its own transition
CHILD_RUN_NOT_STARTED = "ChildRunNotStarted"
#: a namespace for child run ids: the same parent, node and attempt give the same child
_CHILD_IDS = uuid.UUID("6b65656c-2d63-6869-6c64-2d72756e7321")


def child_run_id(run_id: str, node: str, attempt: int) -> str:
    """The id of the child run a subworkflow node starts (derived, so a replay or a
    second process deciding the same step names the same child)."""
    return uuid.uuid5(_CHILD_IDS, f"{run_id}:{node}:{attempt}").hex


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _moment(value: Any) -> float:
    """A timer's ``until``: seconds since the epoch, or an ISO-8601 date-time (UTC when
    it names no zone)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ExpressionError(f"until gave {value!r}, not an ISO-8601 date-time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise ExpressionError(
        f"until must give an ISO-8601 date-time or seconds since the epoch, not "
        f"{type(value).__name__}"
    )


def open_wait(
    state: RunState,
    node: NodePlan,
    now: float,
    variables: dict[str, Any],
    args: dict[str, Any],
) -> list[Event]:
    """The ``NodeAwaiting`` for a waiting node whose join and condition passed.
    ``args`` are its evaluated mapped values (a child run's input; a handler's error)."""
    wait = node.wait
    assert wait is not None
    attempt = state.nodes[node.id].attempt_base + 1
    try:
        details, until = _details(state, node.id, attempt, wait, now, variables, args)
    except (ExpressionError, OverflowError, ValueError, OSError) as exc:
        message = str(exc) if isinstance(exc, ExpressionError) else f"until: {exc}"
        error = ErrorInfo(type="ExpressionError", message=message, retryable=False)
        return [NodeFailed(node=node.id, attempt=0, error=error)]
    return [NodeAwaiting(node=node.id, attempt=attempt, waits_for=wait.kind, details=details,
                         until=until)]  # fmt: skip


def _details(
    state: RunState,
    node_id: str,
    attempt: int,
    wait: WaitNode,
    now: float,
    variables: dict[str, Any],
    args: dict[str, Any],
) -> tuple[dict[str, Any], float | None]:
    if isinstance(wait, ApprovalNode):
        description = fill_template(wait.description, lambda source: evaluate(source, variables))
        details: dict[str, Any] = {
            "title": wait.title, "description": description,
            "assignees": list(wait.assignees), "role": wait.role, "form": wait.form,
        }  # fmt: skip
        if "error" in args:  # a route or handler: what it escalates
            details["error"] = args["error"]
        return details, None if wait.timeout is None else now + wait.timeout
    if isinstance(wait, TimerNode):
        if wait.duration is not None:
            until = now + wait.duration
        else:
            assert wait.until is not None
            until = _moment(evaluate(wait.until, variables))
        return {"until": iso(until)}, until
    if isinstance(wait, SignalNode):
        return {"signal": wait.signal}, None if wait.timeout is None else now + wait.timeout
    assert isinstance(wait, SubworkflowNode)
    details = {
        "workflow": wait.workflow, "version": wait.version, "input": args,
        "run_id": child_run_id(state.run_id, node_id, attempt),
    }  # fmt: skip
    return details, None


def _failed(node_id: str, node: NodeState, kind: str, message: str) -> list[Event]:
    error = ErrorInfo(type=kind, message=message, retryable=False)
    return [NodeFailed(node=node_id, attempt=node.attempt, error=error)]


def _succeeded(node_id: str, node: NodeState, output: Any) -> list[Event]:
    return [NodeSucceeded(node=node_id, attempt=node.attempt, output=output)]


def resolve_wait(state: RunState, node_id: str, event: Event) -> list[Event]:
    """What ends the wait of ``node_id`` given ``event``; nothing if the node no longer
    waits (decided already, withdrawn) or the event is not for this wait."""
    node = state.nodes[node_id]
    plan = state.plan.nodes[node_id]
    wait = plan.wait
    if node.status is not NodeStatus.AWAITING:
        return []
    if wait is None:  # an attempt of a task asked (``ApprovalNeeded``)
        return _answered(node_id, node, event) if isinstance(event, ApprovalDecided) else []
    if isinstance(event, NodeAwaiting | SignalReceived):
        assert isinstance(wait, SignalNode)
        kept = state.signals.get(wait.signal)
        return _succeeded(node_id, node, kept[0]) if kept else []
    if isinstance(event, ApprovalDecided):
        if event.approved:
            return _succeeded(node_id, node, {} if event.data is None else event.data)
        because = f": {event.comment}" if event.comment else ""
        return _failed(node_id, node, REJECTED, f"rejected by {event.by}{because}")
    if isinstance(event, ChildRunEnded):
        if event.run_id != (node.details or {}).get("run_id"):
            return []
        if event.status == "succeeded":
            return _succeeded(node_id, node, event.output)
        why = f": {event.reason}" if event.reason else ""
        return _failed(node_id, node, CHILD_RUN_FAILED,
                       f"child run {event.run_id[:8]} {event.status}{why}")  # fmt: skip
    if isinstance(event, TimerFired) and event.attempt == node.attempt:
        return _timed_out(node_id, node, wait)
    return []


def _answered(node_id: str, node: NodeState, event: ApprovalDecided) -> list[Event]:
    """A task's question answered: approved, the node runs again (a new attempt) with
    every answer so far in its ``approvals`` argument; rejected, it fails."""
    if not event.approved:
        because = f": {event.comment}" if event.comment else ""
        return _failed(node_id, node, REJECTED, f"rejected by {event.by}{because}")
    args = dict(node.args or {})
    answer = {"key": (node.details or {}).get("asked"), "by": event.by, "data": event.data,
              "comment": event.comment}  # fmt: skip
    args["approvals"] = [*args.get("approvals", []), answer]
    return [NodeScheduled(node=node_id, attempt=node.attempt + 1, args=args)]


def _timed_out(node_id: str, node: NodeState, wait: WaitNode) -> list[Event]:
    if isinstance(wait, TimerNode):
        return _succeeded(node_id, node, (node.details or {}).get("until"))
    if isinstance(wait, SignalNode):
        return _failed(node_id, node, SIGNAL_TIMEOUT,
                       f"no signal '{wait.signal}' within {wait.timeout:g} s")  # fmt: skip
    if isinstance(wait, ApprovalNode):
        timeout = wait.timeout or 0.0
        if wait.on_timeout == "approve":  # recorded as a decision, by keel, for the audit
            return [ApprovalDecided(node=node_id, approved=True, by="keel", data={},
                                    comment=f"no decision within {timeout:g} s: approved "
                                    "as on_timeout says")]  # fmt: skip
        if wait.on_timeout == "notify":
            return [ApprovalOverdue(node=node_id, timeout=timeout)]
        return _failed(node_id, node, APPROVAL_TIMEOUT, f"no decision within {timeout:g} s")
    return []

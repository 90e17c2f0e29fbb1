"""The state of one run, and ``apply``: how each event changes it.

State is derived from the history and nothing else, so replaying the history through
``apply`` rebuilds it exactly. Every event costs O(1) plus O(children) when a node ends
(each edge is visited once over the whole run): nodes keep a counter of parents still
running and of how the finished ones ended, and nodes that became decidable wait in a
queue for ``decide``. The state is owned by one engine call at a time and is updated in
place (copying a 100,000-node state per event would defeat the point).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from keel.engine.events import (
    JSON,
    ErrorInfo,
    Event,
    MapExpanded,
    NodeFailed,
    NodeScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
)
from keel.engine.plan import Plan


class NodeStatus(StrEnum):
    WAITING = "waiting"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"


ENDED = frozenset({NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED,
                   NodeStatus.UPSTREAM_FAILED})  # fmt: skip


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class NodeState:
    status: NodeStatus = NodeStatus.WAITING
    waiting_on: int = 0
    parents_succeeded: int = 0
    parents_failed: int = 0
    parents_skipped: int = 0
    attempt: int = 0
    args: dict[str, JSON] | None = None
    output: JSON = None
    error: ErrorInfo | None = None
    #: map nodes: results by item, items finished, attempt and args per item
    item_count: int | None = None
    items_done: int = 0
    item_outputs: list[JSON] = field(default_factory=list)
    item_attempts: dict[int, int] = field(default_factory=dict)
    item_args: dict[int, dict[str, JSON]] = field(default_factory=dict)


@dataclass(slots=True)
class RunState:
    plan: Plan
    status: RunStatus = RunStatus.PENDING
    input: JSON = None
    output: JSON = None
    reason: str | None = None
    nodes: dict[str, NodeState] = field(default_factory=dict)
    ended: int = 0
    last_seq: int = 0
    #: nodes whose parents have all ended, not yet decided (skip, schedule or expand)
    to_decide: deque[str] = field(default_factory=deque)
    #: (node, item) whose attempt failed and may be retried
    to_retry: deque[tuple[str, int | None]] = field(default_factory=deque)
    #: maps whose every item succeeded, waiting for the map's own success event
    to_collect: deque[str] = field(default_factory=deque)
    #: nodes that failed for good, waiting for the run's failure policy
    to_fail: deque[str] = field(default_factory=deque)

    @classmethod
    def new(cls, plan: Plan) -> RunState:
        nodes = {
            node_id: NodeState(waiting_on=len(node.parents)) for node_id, node in plan.nodes.items()
        }
        return cls(plan=plan, nodes=nodes)

    @property
    def finished(self) -> bool:
        return self.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


def _end(state: RunState, node_id: str, status: NodeStatus) -> None:
    node = state.nodes[node_id]
    node.status = status
    state.ended += 1
    for child_id in state.plan.nodes[node_id].children:
        child = state.nodes[child_id]
        if status is NodeStatus.SUCCEEDED:
            child.parents_succeeded += 1
        elif status is NodeStatus.SKIPPED:
            child.parents_skipped += 1
        else:
            child.parents_failed += 1
        child.waiting_on -= 1
        if child.waiting_on == 0:
            state.to_decide.append(child_id)


def apply(state: RunState, event: Event, seq: int | None = None) -> RunState:
    """Fold one event into the state (in place) and return it."""
    if seq is not None:
        state.last_seq = seq
    match event:
        case RunStarted():
            state.status = RunStatus.RUNNING
            state.input = event.input
            state.to_decide.extend(state.plan.roots)
        case NodeScheduled(node=node_id, attempt=attempt, args=args, item=item):
            node = state.nodes[node_id]
            if item is None:
                node.status, node.attempt, node.args = NodeStatus.SCHEDULED, attempt, args
            else:
                node.status = NodeStatus.RUNNING
                node.item_attempts[item] = attempt
                node.item_args[item] = args
        case NodeStarted(node=node_id, item=None):
            state.nodes[node_id].status = NodeStatus.RUNNING
        case NodeStarted():
            pass
        case MapExpanded(node=node_id, count=count):
            node = state.nodes[node_id]
            node.status = NodeStatus.RUNNING
            node.item_count = count
            node.item_outputs = [None] * count
            if count == 0:
                state.to_collect.append(node_id)
        case NodeSucceeded(node=node_id, output=output, item=None):
            state.nodes[node_id].output = output
            _end(state, node_id, NodeStatus.SUCCEEDED)
        case NodeSucceeded(node=node_id, output=output, item=int() as item):
            node = state.nodes[node_id]
            node.item_outputs[item] = output
            node.items_done += 1
            if node.items_done == node.item_count:
                state.to_collect.append(node_id)
        case NodeFailed(node=node_id, attempt=attempt, error=error, item=item):
            node = state.nodes[node_id]
            node.error = error
            limit = state.plan.nodes[node_id].max_attempts
            if item is None and attempt == 0:
                # failed before any attempt (an expression, a bad map): final
                _end(state, node_id, NodeStatus.FAILED)
                state.to_fail.append(node_id)
            elif error.retryable and attempt < limit:
                state.to_retry.append((node_id, item))
            elif item is None:
                _end(state, node_id, NodeStatus.FAILED)
                state.to_fail.append(node_id)
            else:  # an item ran out of attempts: the whole map fails
                state.to_fail.append(node_id)
        case NodeSkipped(node=node_id, upstream_failed=upstream_failed):
            status = NodeStatus.UPSTREAM_FAILED if upstream_failed else NodeStatus.SKIPPED
            _end(state, node_id, status)
        case RunCompleted(output=output):
            state.status, state.output = RunStatus.SUCCEEDED, output
        case RunFailed(reason=reason):
            state.status, state.reason = RunStatus.FAILED, reason
        case RunCancelled(reason=reason):
            state.status, state.reason = RunStatus.CANCELLED, reason
        case _:
            raise TypeError(f"unknown event {event!r}")
    return state

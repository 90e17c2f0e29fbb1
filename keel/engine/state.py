"""The state of one run, and ``apply``: how each event changes it.

State is derived from the history and nothing else, so replaying the history through
``apply`` rebuilds it exactly, and ``decide`` on a replayed state returns only what was
not yet decided (that is how a crashed run resumes). Every event costs O(1) plus
O(children) when a node ends (each edge is visited once over the whole run): nodes keep a
counter of parents still running and of how the finished ones ended, and work that may
need a decision waits in queues. ``apply`` only ever appends to the queues; ``decide``
checks each entry is still pending when it takes it, so entries already acted on (as
they are after a replay) are dropped in O(1). The state is owned by one engine call at a
time and is updated in place: copying a 100,000-node state per event would defeat the
point.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import assert_never

from keel.engine.events import (
    JSON,
    ApprovalDecided,
    ApprovalOverdue,
    ChildRunEnded,
    ErrorInfo,
    Event,
    LateResultDiscarded,
    MapExpanded,
    NodeAwaiting,
    NodeFailed,
    NodeReclaimed,
    NodeReused,
    NodeScheduled,
    NodeSetByHand,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    NodeWithdrawn,
    RunCancelled,
    RunCompleted,
    RunDeadlineExceeded,
    RunFailed,
    RunFailing,
    RunForked,
    RunLate,
    RunPaused,
    RunRetried,
    RunStarted,
    RunUnpaused,
    SignalReceived,
    TimerFired,
)
from keel.engine.plan import Plan
from keel.spec.model import SignalNode


class NodeStatus(StrEnum):
    WAITING = "waiting"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"
    #: its queued attempt was taken back because the run is failing
    WITHDRAWN = "withdrawn"
    #: waits for something outside the run (approval, timer, signal, child run)
    AWAITING = "awaiting"


ENDED = frozenset({NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED,
                   NodeStatus.UPSTREAM_FAILED, NodeStatus.WITHDRAWN})  # fmt: skip


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    #: on its failure path: compensating and handling the failure, then it fails
    FAILING = "failing"
    #: paused by someone: nothing new is scheduled until it is unpaused
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


_FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


def is_finished(status: str) -> bool:
    """Whether a run in ``status`` has ended: it succeeded, failed or was cancelled, and
    nothing more happens to it unless someone retries it by hand. Takes a ``RunStatus``
    or the plain string a store's run record holds; the one definition of "ended"."""
    return status in _FINISHED


#: states in which ``decide`` has work to do
ACTIVE = frozenset({RunStatus.RUNNING, RunStatus.FAILING})


@dataclass(slots=True)
class NodeState:
    status: NodeStatus = NodeStatus.WAITING
    waiting_on: int = 0
    parents_succeeded: int = 0
    parents_failed: int = 0
    parents_skipped: int = 0
    attempt: int = 0
    #: attempts made before the run was last retried by hand: numbering goes on from
    #: here (new idempotency keys) and the retry budget starts again
    attempt_base: int = 0
    #: the latest attempt failed and has not been scheduled again
    failed_attempt: bool = False
    #: the arguments of its latest attempt (a map: those every item shares)
    args: dict[str, JSON] | None = None
    #: a waiting node: what it waits for (``NodeAwaiting.details``: an approval's title,
    #: a timer's time, a child run's id...)
    details: dict[str, JSON] | None = None
    output: JSON = None
    error: ErrorInfo | None = None
    #: map nodes: how many items, the next one to schedule, how many are out and done
    item_count: int | None = None
    next_item: int = 0
    items_out: int = 0
    items_done: int = 0
    item_outputs: list[JSON] = field(default_factory=list)
    item_attempts: dict[int, int] = field(default_factory=dict)
    item_args: dict[int, dict[str, JSON]] = field(default_factory=dict)
    #: items whose latest attempt failed and was not scheduled again
    items_failed: set[int] = field(default_factory=set)
    #: items with an attempt out: whether it has started (else it waits on the queue)
    items_open: dict[int, bool] = field(default_factory=dict)
    #: the evaluated items list; a cache ``decide`` refills when a replay left it empty
    items: list[JSON] | None = None
    #: waiting nodes: when their timer fires (a timer's time, a wait's timeout)
    until: float | None = None


@dataclass(slots=True)
class RunState:
    plan: Plan
    #: the run's id (derived values such as retry jitter depend on it)
    run_id: str = ""
    status: RunStatus = RunStatus.PENDING
    input: JSON = None
    output: JSON = None
    reason: str | None = None
    nodes: dict[str, NodeState] = field(default_factory=dict)
    ended: int = 0
    last_seq: int = 0
    #: the store's hash of the event at ``last_seq`` when known (None: the state runs
    #: ahead of what is committed); the engine never reads it, the store checks a
    #: transition against it so it commits only on top of exactly this state
    head: str | None = None
    #: attempts scheduled and not yet ended (for the run's ``max_parallel``)
    out: int = 0
    #: nodes whose parents have all ended, not yet decided (skip, schedule or expand)
    to_decide: deque[str] = field(default_factory=deque)
    #: (node, item) whose attempt failed and may be retried
    to_retry: deque[tuple[str, int | None]] = field(default_factory=deque)
    #: maps with items left to schedule
    to_feed: deque[str] = field(default_factory=deque)
    #: maps whose every item succeeded, waiting for the map's own success event
    to_collect: deque[str] = field(default_factory=deque)
    #: nodes that failed for good, waiting for the run's failure policy
    to_fail: deque[str] = field(default_factory=deque)
    #: succeeded nodes that declare a compensation, in order of completion
    completed: list[str] = field(default_factory=list)
    #: why the run is failing, and the node that made it fail, once it is
    failure: tuple[str, str | None] | None = None
    #: the deadline timer fired while the run was running
    deadline_passed: bool = False
    #: the run passed its expected duration before it ended (``RunLate``); a retry by
    #: hand gives it its time again, as it does its deadline
    late: bool = False
    #: waiting nodes that something may have resolved (a decision, a signal, a timer,
    #: a child run's end), with the event that did
    to_resolve: deque[tuple[str, Event]] = field(default_factory=deque)
    #: signals delivered and not yet taken by a signal node, oldest first, by name
    signals: dict[str, deque[JSON]] = field(default_factory=dict)
    #: the status to go back to when a paused run is unpaused
    paused_from: RunStatus | None = None
    #: a child run: the parent's run id and the node that waits for it
    parent: dict[str, str] | None = None
    #: the run's trace context as ``RunStarted`` recorded it (None: started before
    #: runs had one); the engine never reads it, workers continue the trace from it
    trace: dict[str, str] | None = None
    #: when the run started: its first event's time, which is its record's
    #: ``created_at`` (None: not known here). Set by the runtime where it builds the
    #: state (events carry no time); the engine never reads it, the run's span starts
    #: there without a read of the run's record
    started_at: float | None = None

    @classmethod
    def new(cls, plan: Plan, run_id: str = "") -> RunState:
        nodes = {
            node_id: NodeState(waiting_on=len(node.parents)) for node_id, node in plan.nodes.items()
        }
        return cls(plan=plan, run_id=run_id, nodes=nodes)

    def has_room(self) -> bool:
        """Whether the run's ``max_parallel`` allows one more attempt out now."""
        limit = self.plan.max_parallel
        return limit is None or self.out < limit


def _count_parent(child: NodeState, status: NodeStatus) -> None:
    """Note how one of the child's parents ended (for its join rule)."""
    if status is NodeStatus.SUCCEEDED:
        child.parents_succeeded += 1
    elif status is NodeStatus.SKIPPED:
        child.parents_skipped += 1
    else:
        child.parents_failed += 1


def _end(state: RunState, node_id: str, status: NodeStatus) -> None:
    node = state.nodes[node_id]
    node.status = status
    state.ended += 1
    for child_id in state.plan.nodes[node_id].children:
        child = state.nodes[child_id]
        _count_parent(child, status)
        child.waiting_on -= 1
        if child.waiting_on == 0:
            state.to_decide.append(child_id)


def _scheduled(state: RunState, event: NodeScheduled) -> None:
    node = state.nodes[event.node]
    state.out += 1
    if event.item is None:
        node.status, node.attempt, node.args = NodeStatus.SCHEDULED, event.attempt, event.args
        node.failed_attempt = False
        return
    node.item_attempts[event.item] = event.attempt
    node.item_args[event.item] = event.args
    node.items_failed.discard(event.item)
    node.items_open[event.item] = False
    if event.attempt == node.attempt_base + 1:
        node.next_item = event.item + 1
        node.items_out += 1
        _fed(state, event.node, node)


def _fed(state: RunState, node_id: str, node: NodeState) -> None:
    """A map that has nothing more to feed for now leaves the feeding queue here, when
    its item is scheduled, not when ``decide`` next looks at it: the queue must be what
    the events say, or a run rebuilt from its history would feed maps in another order
    than the live run did."""
    limit = state.plan.nodes[node_id].max_parallel
    full = limit is not None and node.items_out >= limit
    if (full or node.item_count is None or node.next_item >= node.item_count) and (
        node_id in state.to_feed
    ):
        state.to_feed.remove(node_id)


def _item_ended(state: RunState, node_id: str, node: NodeState) -> None:
    node.items_out -= 1
    more = node.item_count is not None and node.next_item < node.item_count
    if more and node_id not in state.to_feed:
        state.to_feed.append(node_id)


def _failed(state: RunState, event: NodeFailed) -> None:
    node_id, item = event.node, event.item
    node = state.nodes[node_id]
    node.error = event.error
    if event.attempt == 0:  # failed before any attempt (an expression, a bad map): final
        if node.status not in ENDED:
            _end(state, node_id, NodeStatus.FAILED)
        state.to_fail.append(node_id)
        return
    if node.status is not NodeStatus.AWAITING:  # a wait holds no slot
        state.out -= 1
    used = event.attempt - node.attempt_base
    retry = event.error.retryable and used < state.plan.nodes[node_id].max_attempts
    if item is None:
        node.failed_attempt = True
        if retry:
            state.to_retry.append((node_id, None))
        else:
            _end(state, node_id, NodeStatus.FAILED)
            state.to_fail.append(node_id)
        return
    node.items_failed.add(item)
    node.items_open.pop(item, None)
    if retry:
        state.to_retry.append((node_id, item))
    else:  # an item ran out of attempts: the whole map fails
        _item_ended(state, node_id, node)
        state.to_fail.append(node_id)


def _withdrawn(state: RunState, event: NodeWithdrawn) -> None:
    node = state.nodes[event.node]
    if node.status is not NodeStatus.AWAITING:  # a wait holds no slot
        state.out -= 1
    if event.item is None:
        _end(state, event.node, NodeStatus.WITHDRAWN)
    else:
        node.items_open.pop(event.item, None)
        node.items_out -= 1


def _retried(state: RunState, nodes: list[str]) -> None:
    """Make ``nodes`` (closed under descendants by whoever chose them) and every
    failure-path step wait again, and recount what their parents did."""
    plan = state.plan
    again = [*nodes, *plan.side_steps]
    for node_id in again:
        old = state.nodes[node_id]
        if old.status in ENDED:
            state.ended -= 1
        base = max(old.attempt, max(old.item_attempts.values(), default=0))
        state.nodes[node_id] = NodeState(attempt_base=base)
    for node_id in nodes:  # in the order given: the plan's
        node = state.nodes[node_id]
        for parent in plan.nodes[node_id].parents:
            status = state.nodes[parent].status
            if status in ENDED:
                _count_parent(node, status)
            else:
                node.waiting_on += 1
    again_set = set(nodes)
    state.completed = [node_id for node_id in state.completed if node_id not in again_set]
    state.status, state.reason, state.output = RunStatus.RUNNING, None, None
    state.failure, state.deadline_passed, state.late, state.out = None, False, False, 0
    for pending in (state.to_decide, state.to_retry, state.to_feed, state.to_collect,
                    state.to_fail, state.to_resolve):  # fmt: skip
        pending.clear()
    state.to_decide.extend(node_id for node_id in nodes if state.nodes[node_id].waiting_on == 0)


def _set_by_hand(state: RunState, node_id: str, output: JSON) -> None:
    node = state.nodes[node_id]
    if node.status is NodeStatus.SCHEDULED:  # its queued attempt is withdrawn with it
        state.out -= 1
    node.output = output
    _end(state, node_id, NodeStatus.SUCCEEDED)


def _reused(state: RunState, event: NodeReused) -> None:
    """A fork's node that takes its output from the run it was forked from: it ends as
    if it had succeeded, without an attempt. Its effect is the fork's to undo if the
    fork fails, unless that run undid it already (``compensated``)."""
    node = state.nodes[event.node]
    node.output, node.args = event.output, event.args
    _end(state, event.node, NodeStatus.SUCCEEDED)
    if state.plan.nodes[event.node].compensation is not None and not event.compensated:
        state.completed.append(event.node)


def _awaiting(state: RunState, event: NodeAwaiting) -> None:
    node = state.nodes[event.node]
    if node.status in (NodeStatus.SCHEDULED, NodeStatus.RUNNING):  # an attempt asked: it
        state.out -= 1  # ended, and waiting holds no slot
    node.status, node.attempt, node.details = NodeStatus.AWAITING, event.attempt, event.details
    node.until, node.failed_attempt = event.until, False
    if any(pending == event.node for pending, _ in state.to_resolve):
        # what answered an earlier wait of this node (a history replayed without deciding
        # leaves it here) must not answer this one: a task that asks again asks anew
        kept = [entry for entry in state.to_resolve if entry[0] != event.node]
        state.to_resolve.clear()
        state.to_resolve.extend(kept)
    if event.waits_for == "signal":  # a signal may have come before the node got here
        state.to_resolve.append((event.node, event))


def _forget_timers(state: RunState, node_id: str) -> None:
    kept = [(node, event) for node, event in state.to_resolve
            if not (node == node_id and isinstance(event, TimerFired))]  # fmt: skip
    if len(kept) != len(state.to_resolve):
        state.to_resolve.clear()
        state.to_resolve.extend(kept)


def _wait_succeeded(state: RunState, node_id: str) -> None:
    """A signal node takes the signal it was given (the oldest of its name)."""
    wait = state.plan.nodes[node_id].wait
    if isinstance(wait, SignalNode):
        kept = state.signals.get(wait.signal)
        if kept:
            kept.popleft()


def apply(state: RunState, event: Event, seq: int | None = None) -> RunState:
    """Fold one event into the state (in place) and return it."""
    if seq is not None:
        state.last_seq = seq
    match event:
        case RunStarted():
            state.status = RunStatus.RUNNING
            state.input = event.input
            state.parent = event.parent
            state.trace = event.trace
            state.to_decide.extend(state.plan.roots)
        case NodeScheduled():
            _scheduled(state, event)
        case NodeStarted(node=node_id, item=int() as item):
            state.nodes[node_id].items_open[item] = True
        case NodeStarted(node=node_id):  # not an item: the node itself
            state.nodes[node_id].status = NodeStatus.RUNNING
        case NodeReclaimed(node=node_id, item=int() as item):
            state.nodes[node_id].items_open[item] = False
        case NodeReclaimed(node=node_id):  # not an item: the node itself
            state.nodes[node_id].status = NodeStatus.SCHEDULED
        case MapExpanded(node=node_id, count=count):
            node = state.nodes[node_id]
            node.status = NodeStatus.RUNNING
            node.item_count = count
            node.item_outputs = [None] * count
            (state.to_feed if count else state.to_collect).append(node_id)
        case NodeSucceeded(node=node_id, output=output, item=int() as item):
            node = state.nodes[node_id]
            state.out -= 1
            node.items_open.pop(item, None)
            node.item_outputs[item] = output
            node.items_done += 1
            _item_ended(state, node_id, node)
            if node.items_done == node.item_count:
                state.to_collect.append(node_id)
        case NodeSucceeded(node=node_id, output=output):  # not an item: the node itself
            node = state.nodes[node_id]
            if node.status is NodeStatus.AWAITING:
                _wait_succeeded(state, node_id)
            elif node.item_count is None:
                state.out -= 1
            node.output = output
            _end(state, node_id, NodeStatus.SUCCEEDED)
            if state.plan.nodes[node_id].compensation is not None:
                state.completed.append(node_id)
        case NodeFailed():
            _failed(state, event)
        case NodeSkipped(node=node_id, upstream_failed=upstream_failed):
            status = NodeStatus.UPSTREAM_FAILED if upstream_failed else NodeStatus.SKIPPED
            _end(state, node_id, status)
        case RunCompleted(output=output):
            state.status, state.output = RunStatus.SUCCEEDED, output
        case RunFailed(reason=reason):
            state.status, state.reason = RunStatus.FAILED, reason
        case RunCancelled(reason=reason):
            state.status, state.reason = RunStatus.CANCELLED, reason
        case RunFailing(reason=reason, node=node_id):
            state.status, state.failure = RunStatus.FAILING, (reason, node_id)
        case NodeWithdrawn():
            _withdrawn(state, event)
        case RunDeadlineExceeded():
            state.deadline_passed = True
        case RunLate():
            state.late = True
        case RunRetried(nodes=nodes):
            _retried(state, nodes)
        case NodeSetByHand(node=node_id, output=output):
            _set_by_hand(state, node_id, output)
        case NodeReused():
            _reused(state, event)
        case LateResultDiscarded() | RunForked():
            pass
        case NodeAwaiting():
            _awaiting(state, event)
        case ApprovalDecided(node=node_id) | TimerFired(node=node_id) | ChildRunEnded(node=node_id):
            state.to_resolve.append((node_id, event))
        case SignalReceived(name=name, data=data):
            state.signals.setdefault(name, deque()).append(data)
            for node_id in state.plan.signal_nodes.get(name, ()):
                if state.nodes[node_id].status is NodeStatus.AWAITING:
                    state.to_resolve.append((node_id, event))
        case ApprovalOverdue(node=node_id):
            state.nodes[node_id].until = None  # told once; it waits on without a timeout
            # the timer it answered is spent: a history replayed without deciding (a
            # process that reloads the run) must not find it again and tell twice
            _forget_timers(state, node_id)
        case RunPaused():
            state.paused_from, state.status = state.status, RunStatus.PAUSED
        case RunUnpaused():
            state.status, state.paused_from = state.paused_from or RunStatus.RUNNING, None
        case _:
            assert_never(event)
    return state

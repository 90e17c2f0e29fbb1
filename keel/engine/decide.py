"""``decide``: given a run's state, what happens next. Pure and deterministic.

``decide`` drains the state's queues (nodes whose parents ended, attempts to retry,
maps to collect, failures to act on) and returns the events that follow from them,
applying each to the state as it goes so that one decision can enable the next (a
skipped node can make its children decidable). After it returns, the state equals the
history plus the returned events replayed, so the caller records exactly those events
in the same transaction as the event that caused them. No clock, no I/O, no randomness:
``now`` is an argument, for time-based policies.
"""

from __future__ import annotations

import json
from typing import Any

from keel.engine.backoff import backoff
from keel.engine.events import (
    ErrorInfo,
    Event,
    MapExpanded,
    NodeFailed,
    NodeScheduled,
    NodeSkipped,
    NodeSucceeded,
    NodeWithdrawn,
    RunCompleted,
    RunFailed,
    RunFailing,
)
from keel.engine.plan import NodePlan
from keel.engine.state import ACTIVE, ENDED, NodeState, NodeStatus, RunState, RunStatus, apply
from keel.engine.waits import APPROVAL_TIMEOUT, open_wait, resolve_wait
from keel.errors import ExpressionError
from keel.spec.expressions import evaluate
from keel.spec.model import JoinRule


def _variables(state: RunState, reads: tuple[str, ...]) -> dict[str, Any]:
    nodes = state.nodes
    return {
        "input": state.input,
        "nodes": {node_id: {"output": nodes[node_id].output} for node_id in reads},
    }


def join_outcome(node: NodePlan, succeeded: int, failed: int, total: int | None = None) -> str:
    """``run``, ``skip`` or ``upstream_failed`` for a node whose parents all ended
    (``total`` of them; all its parents unless given)."""
    total = len(node.parents) if total is None else total
    rule = node.join
    if rule is JoinRule.ALL_DONE:
        return "run"
    if rule is JoinRule.ONE_FAILED:
        return "run" if failed else "skip"
    if rule is JoinRule.ALL_SUCCEEDED:
        passed = succeeded == total
    elif rule is JoinRule.ONE_SUCCEEDED:
        passed = succeeded > 0 or total == 0
    else:  # NONE_FAILED
        passed = failed == 0 and (succeeded > 0 or total == 0)
    if passed:
        return "run"
    return "upstream_failed" if failed else "skip"


def _shown(value: Any) -> str:
    """A value as the expression language writes it (``false``, not ``False``)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _expression_failure(node: str, what: str, exc: Exception) -> NodeFailed:
    error = ErrorInfo(type="ExpressionError", message=f"{what}: {exc}", retryable=False)
    return NodeFailed(node=node, attempt=0, error=error)


def _arguments(state: RunState, node: NodePlan) -> dict[str, Any]:
    variables = _variables(state, node.reads)
    return {
        name: state.plan.evaluate(str(value), variables) if is_expression else value
        for name, is_expression, value in node.args
    }


def _evaluate_items(state: RunState, node: NodePlan) -> list[Any]:
    assert node.items is not None
    items = state.plan.evaluate(node.items, _variables(state, node.reads))
    if not isinstance(items, list):
        raise ExpressionError(f"items must be a list, got {type(items).__name__}")
    if node.max_items is not None and len(items) > node.max_items:
        raise ExpressionError(
            f"items gave {len(items)} items, more than max_items={node.max_items}"
        )
    return items


def _start_node(
    state: RunState, node: NodePlan, now: float, extra: dict[str, Any] | None = None
) -> list[Event] | None:
    """Events for a node whose join rule passed: skip, schedule, expand its map or open
    its wait. ``extra`` arguments are added to the node's own (a handler's ``error``).

    ``None`` when the node should be scheduled but the run is at its ``max_parallel``
    (a wait holds no slot, so it never waits for one).
    """
    if node.when is not None:
        try:
            condition = state.plan.evaluate(node.when, _variables(state, node.reads))
        except ExpressionError as exc:
            return [_expression_failure(node.id, "when", exc)]
        if condition is not True:
            return [NodeSkipped(node=node.id, reason=f"when: {node.when} was {_shown(condition)}")]
    if node.items is None and node.wait is None and not state.has_room():
        return None
    try:
        args = _arguments(state, node)
    except ExpressionError as exc:
        return [_expression_failure(node.id, "arguments", exc)]
    if extra:
        args.update(extra)
    if node.wait is not None:
        return open_wait(state, node, now, _variables(state, node.reads), args)
    first = state.nodes[node.id].attempt_base + 1
    if node.items is None:
        return [NodeScheduled(node=node.id, attempt=first, args=args)]
    try:
        items = _evaluate_items(state, node)
    except ExpressionError as exc:
        return [_expression_failure(node.id, "items", exc)]
    state.nodes[node.id].items = items
    state.nodes[node.id].args = args
    return [MapExpanded(node=node.id, count=len(items))]


def _feed(state: RunState, node_id: str) -> Event:
    """The next item of a map, if the map's and the run's limits allow one more."""
    plan, node = state.plan.nodes[node_id], state.nodes[node_id]
    if node.items is None:  # after a replay: the cache is empty, the values are not
        node.items = _evaluate_items(state, plan)
        node.args = _arguments(state, plan)
    assert plan.item_arg is not None
    assert node.args is not None
    index = node.next_item
    args = {**node.args, plan.item_arg: node.items[index]}
    return NodeScheduled(node=node_id, attempt=node.attempt_base + 1, args=args, item=index)


def _attempts(node: NodeState) -> int:
    latest = max(node.attempt, max(node.item_attempts.values(), default=0))
    return latest - node.attempt_base


def _error_data(node_id: str, node: NodeState) -> dict[str, Any]:
    error = node.error or ErrorInfo(type="Error", message="failed")
    return {"node": node_id, "type": error.type, "message": error.message,
            "traceback": error.traceback, "attempts": _attempts(node)}  # fmt: skip


def _handled_failure(state: RunState, handler: str, handled: str) -> bool:
    """Whether ``handled`` failed in a way ``handler`` takes: any failure routed by its
    ``on_failure``; only a timeout when it is an approval's timeout route."""
    if state.nodes[handled].status is not NodeStatus.FAILED:
        return False
    plan = state.plan.nodes[handled]
    if plan.handler == handler:
        return True
    error = state.nodes[handled].error
    return plan.timeout_route == handler and error is not None and error.type == APPROVAL_TIMEOUT


def _decide_handler(state: RunState, node: NodePlan, now: float) -> list[Event] | None:
    """A handler runs when a node it handles failed, with that node's ``error``; its
    join rule applies to its other parents only."""
    failed = [h for h in node.handles if _handled_failure(state, node.id, h)]
    if not failed:
        routed = all(state.plan.nodes[h].handler != node.id for h in node.handles)
        how = "did not time out" if routed else "did not fail"
        reason = f"nothing to handle: {', '.join(node.handles)} {how}"
        return [NodeSkipped(node=node.id, reason=reason)]
    others = [state.nodes[p].status for p in node.parents if p not in node.handles]
    if others:
        succeeded = sum(status is NodeStatus.SUCCEEDED for status in others)
        failures = sum(status not in (NodeStatus.SUCCEEDED, NodeStatus.SKIPPED)
                       for status in others)  # fmt: skip
        outcome = join_outcome(node, succeeded, failures, len(others))
        if outcome != "run":
            reason = f"join {node.join.value} over its other parents did not pass"
            return [NodeSkipped(node=node.id, reason=reason,
                                upstream_failed=outcome == "upstream_failed")]  # fmt: skip
    error = _error_data(failed[0], state.nodes[failed[0]])
    return _start_node(state, node, now, {"error": error})


def _decide_node(state: RunState, node_id: str, now: float) -> list[Event] | None:
    node = state.plan.nodes[node_id]
    if node.handles:
        return _decide_handler(state, node, now)
    counts = state.nodes[node_id]
    outcome = join_outcome(node, counts.parents_succeeded, counts.parents_failed)
    if outcome == "run":
        return _start_node(state, node, now)
    reason = (
        f"join {node.join.value}: {counts.parents_succeeded} succeeded, "
        f"{counts.parents_failed} failed, {counts.parents_skipped} skipped"
    )
    return [NodeSkipped(node=node_id, reason=reason, upstream_failed=outcome == "upstream_failed")]


def _retry(state: RunState, node_id: str, item: int | None, now: float) -> Event:
    """The next attempt, not before its backoff has passed (a durable wait: the ready
    queue holds it until then, whatever happens to the processes meanwhile)."""
    node = state.nodes[node_id]
    failed = node.attempt if item is None else node.item_attempts[item]
    wait = backoff(state.plan.nodes[node_id].retry, state.run_id, node_id, item, failed)
    asked = node.error.retry_after if node.error is not None else None
    if asked is not None:  # the failed call was told when to come back: not sooner
        wait = max(wait, asked)
    not_before = now + wait if wait > 0 else None
    if item is None:
        return NodeScheduled(
            node=node_id, attempt=failed + 1, args=node.args or {}, not_before=not_before
        )
    return NodeScheduled(
        node=node_id, attempt=failed + 1, args=node.item_args[item], item=item,
        not_before=not_before,
    )  # fmt: skip


def _retry_pending(state: RunState, node_id: str, item: int | None) -> bool:
    node = state.nodes[node_id]
    if node.status in ENDED:
        return False
    return node.failed_attempt if item is None else item in node.items_failed


def _fail(state: RunState, node_id: str) -> list[Event]:
    node = state.nodes[node_id]
    if node.status not in ENDED:  # a map whose item ran out of attempts
        assert node.error is not None
        return [NodeFailed(node=node_id, attempt=0, error=node.error)]
    plan = state.plan.nodes[node_id]
    if state.status is not RunStatus.RUNNING or plan.on_failure != "fail":
        return []  # the run goes on (``continue``, a handler) or is failing already
    error = node.error
    if plan.timeout_route is not None and error is not None and error.type == APPROVAL_TIMEOUT:
        return []  # routed to the node that takes the timeout
    detail = f"{error.type}: {error.message}" if error else "failed"
    return _run_failure(state, f"node '{node_id}' failed: {detail}", node_id)


def _withdrawals(state: RunState) -> list[Event]:
    """Attempts on the queue that no worker has started, in plan order."""
    reason = "the run is failing"
    events: list[Event] = []
    for node_id in state.plan.nodes:
        node = state.nodes[node_id]
        if node.status in (NodeStatus.SCHEDULED, NodeStatus.AWAITING):
            events.append(NodeWithdrawn(node=node_id, attempt=node.attempt, reason=reason))
        for item, started in sorted(node.items_open.items()):
            if not started:
                events.append(NodeWithdrawn(node=node_id, attempt=node.item_attempts[item],
                                            reason=reason, item=item))  # fmt: skip
    return events


def _run_failure(state: RunState, reason: str, node_id: str | None) -> list[Event]:
    """The run fails: at once, or through its failure path when it has one."""
    if not state.plan.has_failure_path:
        return [RunFailed(reason=reason, node=node_id)]
    return [RunFailing(reason=reason, node=node_id), *_withdrawals(state)]


def _complete(state: RunState) -> list[Event]:
    outputs = state.plan.spec.outputs
    variables = _variables(state, state.plan.output_reads)
    try:
        return [
            RunCompleted(
                output={name: evaluate(source, variables) for name, source in outputs.items()}
            )
        ]
    except ExpressionError as exc:
        return _run_failure(state, f"outputs: {exc}", None)


# --- the failure path -----------------------------------------------------------------------


def _failure_data(state: RunState) -> dict[str, Any]:
    """What the run's failure handler receives as ``failure``."""
    reason, node_id = state.failure or ("failed", None)
    plan = state.plan
    compensations = []
    for done in state.completed:
        step = plan.nodes[done].compensation
        assert step is not None
        compensated = state.nodes[step]
        entry: dict[str, Any] = {"node": done, "status": compensated.status.value}
        if compensated.status is NodeStatus.FAILED:
            entry["error"] = _error_data(step, compensated)
        compensations.append(entry)
    error = None
    if node_id is not None and state.nodes[node_id].error is not None:
        error = _error_data(node_id, state.nodes[node_id])
    return {"run_id": state.run_id, "workflow": plan.spec.name, "reason": reason,
            "node": node_id, "error": error, "compensations": compensations}  # fmt: skip


def _side_step(state: RunState, step: str, args: dict[str, Any]) -> list[Event]:
    return [NodeScheduled(node=step, attempt=state.nodes[step].attempt_base + 1, args=args)]


def _failed_run(state: RunState) -> list[Event]:
    reason, node_id = state.failure or ("failed", None)
    plan = state.plan
    undone = [
        done
        for done in state.completed
        if state.nodes[str(plan.nodes[done].compensation)].status is NodeStatus.FAILED
    ]
    if undone:
        reason += f"; compensation failed for {', '.join(undone)}"
    handler = plan.failure_handler
    if handler is not None and state.nodes[handler].status is NodeStatus.FAILED:
        reason += "; the run's failure handler failed"
    return [RunFailed(reason=reason, node=node_id, compensation_failed=undone)]


def _next_on_failure_path(state: RunState) -> list[Event] | None:
    """Compensations one at a time in reverse order of completion, then the failure
    handler, then ``RunFailed``. Each waits for the step before it to end (succeeded,
    or failed after its own retries: a failed compensation does not stop the others)."""
    plan = state.plan
    for done in reversed(state.completed):
        step = plan.nodes[done].compensation
        assert step is not None
        status = state.nodes[step].status
        if status is NodeStatus.WAITING:
            node = state.nodes[done]
            return _side_step(state, step, {**(node.args or {}), "output": node.output})
        if status not in ENDED:
            return None
    handler = plan.failure_handler
    if handler is not None:
        status = state.nodes[handler].status
        if status is NodeStatus.WAITING:
            return _side_step(state, handler, {"failure": _failure_data(state)})
        if status not in ENDED:
            return None
    return _failed_run(state)


def _next_failing_events(state: RunState, now: float) -> list[Event] | None:
    """``_next_events`` for a failing run: nothing new starts in the graph; retries
    only for failure-path steps; once no attempt is out, the next failure-path step."""
    if state.to_fail:
        return _fail(state, state.to_fail.popleft())
    if state.to_collect:
        return _collect(state, state.to_collect.popleft())
    state.to_resolve.clear()  # every wait was withdrawn when the run began to fail
    if state.to_retry:
        node_id, item = state.to_retry.popleft()
        if node_id not in state.plan.side_steps:
            return []  # nothing in the graph is tried again once the run is failing
        return [_retry(state, node_id, item, now)] if _retry_pending(state, node_id, item) else []
    state.to_feed.clear()
    state.to_decide.clear()
    if state.out > 0:
        return None
    return _next_on_failure_path(state)


def _collect(state: RunState, node_id: str) -> list[Event]:
    node = state.nodes[node_id]
    if node.status in ENDED:
        return []
    return [NodeSucceeded(node=node_id, attempt=1, output=list(node.item_outputs))]


def _next_events(state: RunState, now: float) -> list[Event] | None:
    """The events for the first pending piece of work, dropping entries already acted on.

    ``None`` when nothing more can be decided now: every queue is empty, or what comes
    next must wait for a free slot under the run's ``max_parallel``.
    """
    if state.status is RunStatus.FAILING:
        return _next_failing_events(state, now)
    if state.deadline_passed:
        deadline = state.plan.deadline or 0.0
        return _run_failure(state, f"the run passed its deadline ({deadline:g} s)", None)
    if state.to_fail:
        return _fail(state, state.to_fail.popleft())
    if state.to_collect:
        return _collect(state, state.to_collect.popleft())
    if state.to_resolve:
        return resolve_wait(state, *state.to_resolve.popleft())
    if state.to_retry:
        node_id, item = state.to_retry[0]
        if not _retry_pending(state, node_id, item):
            state.to_retry.popleft()
            return []
        if not state.has_room():
            return None
        state.to_retry.popleft()
        return [_retry(state, node_id, item, now)]
    if state.to_feed:
        node_id = state.to_feed[0]
        node, plan = state.nodes[node_id], state.plan.nodes[node_id]
        assert node.item_count is not None
        limit = plan.max_parallel
        if node.status in ENDED or node.next_item >= node.item_count:
            state.to_feed.popleft()
            return []
        if limit is not None and node.items_out >= limit:
            state.to_feed.popleft()  # an item ending puts the map back in the queue
            return []
        if not state.has_room():
            return None
        try:
            event = _feed(state, node_id)
        except ExpressionError as exc:  # cannot happen unless a replay changed the data
            state.to_feed.popleft()
            return [_expression_failure(node_id, "items", exc)]
        return [event]
    if state.to_decide:
        node_id = state.to_decide[0]
        if state.nodes[node_id].status is not NodeStatus.WAITING:
            state.to_decide.popleft()
            return []
        events = _decide_node(state, node_id, now)
        if events is None:
            return None
        state.to_decide.popleft()
        return events
    return None


def _queues_empty(state: RunState) -> bool:
    return not (
        state.to_fail
        or state.to_collect
        or state.to_retry
        or state.to_feed
        or state.to_decide
        or state.to_resolve
    )


def decide(state: RunState, now: float) -> list[Event]:
    """Every event that follows from the state now; each is already applied to it."""
    decided: list[Event] = []
    while state.status in ACTIVE:
        events = _next_events(state, now)
        if events is None:
            running = state.status is RunStatus.RUNNING
            if running and state.ended == state.plan.graph_count and _queues_empty(state):
                events = _complete(state)
            else:
                break
        for event in events:
            apply(state, event)
            decided.append(event)
    return decided

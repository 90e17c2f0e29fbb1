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
    RunCompleted,
    RunFailed,
)
from keel.engine.plan import NodePlan
from keel.engine.state import ENDED, NodeStatus, RunState, RunStatus, apply
from keel.errors import ExpressionError
from keel.spec.expressions import evaluate
from keel.spec.model import JoinRule


def _variables(state: RunState, reads: tuple[str, ...]) -> dict[str, Any]:
    nodes = state.nodes
    return {
        "input": state.input,
        "nodes": {node_id: {"output": nodes[node_id].output} for node_id in reads},
    }


def join_outcome(node: NodePlan, succeeded: int, failed: int) -> str:
    """``run``, ``skip`` or ``upstream_failed`` for a node whose parents all ended."""
    total = len(node.parents)
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
        name: evaluate(str(value), variables) if is_expression else value
        for name, is_expression, value in node.args
    }


def _evaluate_items(state: RunState, node: NodePlan) -> list[Any]:
    assert node.items is not None
    items = evaluate(node.items, _variables(state, node.reads))
    if not isinstance(items, list):
        raise ExpressionError(f"items must be a list, got {type(items).__name__}")
    return items


def _start_node(state: RunState, node: NodePlan) -> list[Event] | None:
    """Events for a node whose join rule passed: skip, schedule or expand its map.

    ``None`` when the node should be scheduled but the run is at its ``max_parallel``.
    """
    if node.when is not None:
        try:
            condition = evaluate(node.when, _variables(state, node.reads))
        except ExpressionError as exc:
            return [_expression_failure(node.id, "when", exc)]
        if condition is not True:
            return [NodeSkipped(node=node.id, reason=f"when: {node.when} was {_shown(condition)}")]
    if node.items is None and not state.has_room():
        return None
    try:
        args = _arguments(state, node)
    except ExpressionError as exc:
        return [_expression_failure(node.id, "arguments", exc)]
    if node.items is None:
        return [NodeScheduled(node=node.id, attempt=1, args=args)]
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
    return NodeScheduled(node=node_id, attempt=1, args=args, item=index)


def _decide_node(state: RunState, node_id: str) -> list[Event] | None:
    node = state.plan.nodes[node_id]
    counts = state.nodes[node_id]
    outcome = join_outcome(node, counts.parents_succeeded, counts.parents_failed)
    if outcome == "run":
        return _start_node(state, node)
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


def _fail(state: RunState, node_id: str) -> Event | None:
    node = state.nodes[node_id]
    if node.status not in ENDED:  # a map whose item ran out of attempts
        assert node.error is not None
        return NodeFailed(node=node_id, attempt=0, error=node.error)
    if state.status is not RunStatus.RUNNING:
        return None
    error = node.error
    detail = f"{error.type}: {error.message}" if error else "failed"
    return RunFailed(reason=f"node '{node_id}' failed: {detail}", node=node_id)


def _complete(state: RunState) -> Event:
    outputs = state.plan.spec.outputs
    variables = _variables(state, state.plan.output_reads)
    try:
        return RunCompleted(
            output={name: evaluate(source, variables) for name, source in outputs.items()}
        )
    except ExpressionError as exc:
        return RunFailed(reason=f"outputs: {exc}")


def _next_events(state: RunState, now: float) -> list[Event] | None:
    """The events for the first pending piece of work, dropping entries already acted on.

    ``None`` when nothing more can be decided now: every queue is empty, or what comes
    next must wait for a free slot under the run's ``max_parallel``.
    """
    if state.to_fail:
        event = _fail(state, state.to_fail.popleft())
        return [event] if event is not None else []
    if state.to_collect:
        node_id = state.to_collect.popleft()
        node = state.nodes[node_id]
        if node.status in ENDED:
            return []
        return [NodeSucceeded(node=node_id, attempt=1, output=list(node.item_outputs))]
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
        events = _decide_node(state, node_id)
        if events is None:
            return None
        state.to_decide.popleft()
        return events
    return None


def _queues_empty(state: RunState) -> bool:
    return not (
        state.to_fail or state.to_collect or state.to_retry or state.to_feed or state.to_decide
    )


def decide(state: RunState, now: float) -> list[Event]:
    """Every event that follows from the state now; each is already applied to it."""
    decided: list[Event] = []
    while state.status is RunStatus.RUNNING:
        events = _next_events(state, now)
        if events is None:
            if state.ended == len(state.nodes) and _queues_empty(state):
                events = [_complete(state)]
            else:
                break
        for event in events:
            apply(state, event)
            decided.append(event)
    return decided

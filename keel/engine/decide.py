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

from typing import Any

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
from keel.engine.state import ENDED, RunState, RunStatus, apply
from keel.errors import ExpressionError
from keel.spec.expressions import evaluate
from keel.spec.model import JoinRule


def _variables(state: RunState, reads: tuple[str, ...]) -> dict[str, Any]:
    nodes = state.nodes
    return {
        "input": state.input,
        "nodes": {node_id: {"output": nodes[node_id].output} for node_id in reads},
    }


def join_outcome(node: NodePlan, succeeded: int, failed: int, skipped: int) -> str:
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


def _expression_failure(node: str, what: str, exc: Exception) -> NodeFailed:
    error = ErrorInfo(type="ExpressionError", message=f"{what}: {exc}", retryable=False)
    return NodeFailed(node=node, attempt=0, error=error)


def _arguments(state: RunState, node: NodePlan) -> dict[str, Any]:
    variables = _variables(state, node.reads)
    return {
        name: evaluate(str(value), variables) if is_expression else value
        for name, is_expression, value in node.args
    }


def _start_node(state: RunState, node: NodePlan) -> list[Event]:
    """Events for a node whose join rule passed: skip, schedule or expand its map."""
    if node.when is not None:
        try:
            condition = evaluate(node.when, _variables(state, node.reads))
        except ExpressionError as exc:
            return [_expression_failure(node.id, "when", exc)]
        if condition is not True:
            return [NodeSkipped(node=node.id, reason=f"when: {node.when} was {condition!r}")]
    try:
        args = _arguments(state, node)
    except ExpressionError as exc:
        return [_expression_failure(node.id, "arguments", exc)]
    if node.items is None:
        return [NodeScheduled(node=node.id, attempt=1, args=args)]
    try:
        items = evaluate(node.items, _variables(state, node.reads))
    except ExpressionError as exc:
        return [_expression_failure(node.id, "items", exc)]
    if not isinstance(items, list):
        message = f"items must be a list, got {type(items).__name__}"
        return [_expression_failure(node.id, "items", TypeError(message))]
    assert node.item_arg is not None
    events: list[Event] = [MapExpanded(node=node.id, count=len(items))]
    events += [
        NodeScheduled(node=node.id, attempt=1, args={**args, node.item_arg: item}, item=index)
        for index, item in enumerate(items)
    ]
    return events


def _decide_node(state: RunState, node_id: str) -> list[Event]:
    node = state.plan.nodes[node_id]
    counts = state.nodes[node_id]
    outcome = join_outcome(
        node, counts.parents_succeeded, counts.parents_failed, counts.parents_skipped
    )
    if outcome == "run":
        return _start_node(state, node)
    reason = (
        f"join {node.join.value}: {counts.parents_succeeded} succeeded, "
        f"{counts.parents_failed} failed, {counts.parents_skipped} skipped"
    )
    return [NodeSkipped(node=node_id, reason=reason, upstream_failed=outcome == "upstream_failed")]


def _retry(state: RunState, node_id: str, item: int | None) -> Event:
    node = state.nodes[node_id]
    if item is None:
        return NodeScheduled(node=node_id, attempt=node.attempt + 1, args=node.args or {})
    return NodeScheduled(
        node=node_id, attempt=node.item_attempts[item] + 1, args=node.item_args[item], item=item
    )


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


def _next_events(state: RunState) -> list[Event]:
    if state.to_fail:
        event = _fail(state, state.to_fail.popleft())
        return [event] if event is not None else []
    if state.to_retry:
        return [_retry(state, *state.to_retry.popleft())]
    if state.to_collect:
        node_id = state.to_collect.popleft()
        node = state.nodes[node_id]
        return [NodeSucceeded(node=node_id, attempt=1, output=list(node.item_outputs))]
    if state.to_decide:
        return _decide_node(state, state.to_decide.popleft())
    return []


def decide(state: RunState, now: float) -> list[Event]:
    """Every event that follows from the state now; each is already applied to it."""
    decided: list[Event] = []
    while state.status is RunStatus.RUNNING:
        events = _next_events(state)
        if not events:
            if state.ended == len(state.nodes):
                events = [_complete(state)]
            else:
                break
        for event in events:
            apply(state, event)
            decided.append(event)
    return decided

"""What people do to runs by hand: retry a failed run, re-run one node, set a node's
output. Each is recorded in the run's history as an event naming who did it (``by``,
the OS user unless given), so the audit trail shows manual steps next to the engine's.

A failed run keeps everything needed to continue it: its history holds the outputs of
the nodes that succeeded, so a retry re-runs only what failed and what depends on it.
Nodes whose effects a compensation undid run again too: their work was taken back.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any

from keel.engine.events import Event, NodeSetByHand, RunRetried
from keel.engine.state import ENDED, NodeStatus, RunState, RunStatus
from keel.errors import ConflictError, InputError, KeelError
from keel.runtime.clock import Clock, clock_for
from keel.runtime.execution.invoke import TaskCatalog
from keel.runtime.operations.inputs import check_data
from keel.runtime.runs import RunCache, advance
from keel.runtime.tracing import run_spans
from keel.spec.data import check_json
from keel.spec.model import ApprovalNode, MapNode, Node, SignalNode, TaskNode
from keel.store.protocol import Store
from keel.store.records import RunRecord


def change_run(
    store: Store,
    run_id: str,
    events_for: Callable[[RunState], list[Event]],
    *,
    clock: Clock | None = None,
) -> RunRecord:
    """Record the events ``events_for`` chooses for the run's current state, and what
    follows from them; chosen again if another process moved the run meanwhile."""
    clock = clock or clock_for(store)
    for _ in range(5):
        record = store.get_run(run_id)
        cache = RunCache(store)
        state = cache.state(record.id)
        events = events_for(state)
        (result,) = store.commit([advance(record.id, state, events, clock.now(), cache=cache)])
        if result.error is None:
            run_spans.emit_ended(store, state, result)  # the run's span, if this ended it
            return store.get_run(record.id)
        if not isinstance(result.error, ConflictError):
            raise result.error
    raise KeelError(f"run {run_id} keeps changing; try again")


def _descendants(state: RunState, seeds: set[str]) -> list[str]:
    """``seeds`` and every node downstream of them, in plan order."""
    plan = state.plan
    found = set(seeds)
    stack = list(seeds)
    while stack:
        for child in plan.nodes[stack.pop()].children:
            if child not in found:
                found.add(child)
                stack.append(child)
    return [node_id for node_id in plan.graph_nodes if node_id in found]


def _undone(state: RunState) -> set[str]:
    """Nodes whose compensation ran: their effect was taken back, so they run again."""
    plan = state.plan
    return {
        node_id
        for node_id in state.completed
        if state.nodes[str(plan.nodes[node_id].compensation)].status is not NodeStatus.WAITING
    }


def _graph_node(state: RunState, node: str) -> None:
    plan = state.plan
    if node not in plan.graph_nodes:
        known = ", ".join(plan.graph_nodes)
        raise KeelError(f"workflow '{plan.spec.name}' has no node '{node}' (nodes: {known})")


def _must_have_failed(state: RunState, action: str) -> None:
    if state.status is not RunStatus.FAILED:
        raise KeelError(
            f"run {state.run_id[:8]} is {state.status.value}: only a failed run can be {action}"
        )


def to_retry(state: RunState, node: str | None = None) -> list[str]:
    """The nodes a retry runs again: the ones that did not succeed (or only ``node``),
    those whose work a compensation undid, and everything downstream of them."""
    if node is not None:
        _graph_node(state, node)
        seeds = {node}
    else:
        seeds = {
            node_id
            for node_id in state.plan.graph_nodes
            if state.nodes[node_id].status not in (NodeStatus.SUCCEEDED, NodeStatus.SKIPPED)
        }
    return _descendants(state, seeds | _undone(state))


def retry_run(
    store: Store,
    run_id: str,
    *,
    node: str | None = None,
    by: str | None = None,
    reason: str = "",
    clock: Clock | None = None,
) -> RunRecord:
    """Continue a failed run from its failed nodes (or re-run ``node`` and what depends
    on it). Succeeded nodes keep their outputs; the attempts that follow get new numbers,
    and the retry policy's budget starts again."""
    who = by or getpass.getuser()

    def events_for(state: RunState) -> list[Event]:
        _must_have_failed(state, "retried")
        return [RunRetried(by=who, nodes=to_retry(state, node), reason=reason)]

    return change_run(store, run_id, events_for, clock=clock)


def check_output_type(state: RunState, node: str, output: Any, catalog: TaskCatalog) -> None:
    """Raise ``InputError`` if ``output`` is not what ``node`` could have produced: its
    task's return type (a list of them for a map), or the schema of an approval's form
    or a signal's payload. The next steps read it as they would a real result."""
    spec_node = state.plan.spec.node(node)
    if isinstance(spec_node, ApprovalNode | SignalNode):
        schema = spec_node.form if isinstance(spec_node, ApprovalNode) else spec_node.payload_schema
        if schema is not None:
            check_data(dict(schema), output, f"node '{node}'")
        return
    if not isinstance(spec_node, TaskNode | MapNode):
        return
    try:
        prepared = catalog.get(spec_node.task)
    except Exception as exc:  # a missing module, or the user's module raised
        raise KeelError(
            f"cannot check the output for node '{node}' against its task's return type: "
            f"importing '{spec_node.task}' failed ({exc}); do this where the workflow's "
            "code can be imported"
        ) from None
    if prepared.returns is None:
        return
    if isinstance(spec_node, MapNode):
        if not isinstance(output, list):
            raise InputError(
                f"the output given for map node '{node}' must be a list (one "
                f"{prepared.returns.name} per item), not {type(output).__name__}"
            )
        items: list[tuple[int | None, Any]] = list(enumerate(output))
    else:
        items = [(None, output)]
    for index, item in items:
        problem = prepared.result_problem(item)
        if problem is not None:
            which = "" if index is None else f" (item {index})"
            raise InputError(
                f"the output given for node '{node}'{which} does not fit the return type "
                f"{prepared.returns.name} of {spec_node.task}: {problem}"
            )


def set_node_output(
    store: Store,
    run_id: str,
    node: str,
    output: Any,
    *,
    by: str | None = None,
    reason: str = "",
    clock: Clock | None = None,
    guard: Callable[[Node], None] | None = None,
) -> RunRecord:
    """Mark ``node`` done by hand with ``output`` (``keel skip``), and let the run go on.

    On a failed run this also retries what else failed; on a running run the node must
    not have started (it may wait for its parents, or on the queue for a retry).
    ``guard`` raises ``ForbiddenError`` when the one acting may not set this node (the
    server: setting an approval by hand decides it, so only its deciders may)."""
    who = by or getpass.getuser()
    check_json(output, f"the output given for node '{node}'")
    catalog = TaskCatalog()

    def events_for(state: RunState) -> list[Event]:
        _graph_node(state, node)
        if guard is not None:
            guard(state.plan.spec.node(node))
        check_output_type(state, node, output, catalog)
        setting = NodeSetByHand(node=node, output=output, by=who, reason=reason)
        if state.status is RunStatus.FAILED:
            again = to_retry(state)
            if node not in again:
                raise KeelError(f"node '{node}' succeeded already; use keel retry --node {node}")
            retried = RunRetried(by=who, nodes=again, reason=reason or f"{node} set by hand")
            return [retried, setting]
        if state.status is not RunStatus.RUNNING:
            raise KeelError(f"run {state.run_id[:8]} is {state.status.value}: it cannot change")
        current = state.nodes[node]
        if current.status in ENDED:
            raise KeelError(f"node '{node}' has ended already ({current.status.value})")
        if current.status is NodeStatus.RUNNING or current.items_open or current.item_count:
            raise KeelError(f"node '{node}' is running now; wait for it to end or cancel the run")
        return [setting]

    return change_run(store, run_id, events_for, clock=clock)

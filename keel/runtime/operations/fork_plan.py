"""What a fork of a run will do, decided before anything is recorded: which nodes take
their recorded output from the run (reused), which run again, and what running them
again touches (side effects, models, people, child runs, notifiers).

The rule (``keel fork RUN --from NODE``): ``NODE`` and every node after it run again;
every other node that succeeded in the run is reused whole (a map with all its items),
its output as recorded. Nodes that did not succeed there (failed, skipped, not reached)
and nodes the fork's version adds are decided again as in any run. A reused node keeps
its output even if a node before it that did not succeed is decided otherwise in the
fork: fork from that node to run what follows it again.

Compensations: a reused node whose effect the run undid already (its compensation
succeeded there) is never undone again by the fork; any other reused node with a
compensation is the fork's to undo if the fork fails (it took that effect over).

``plan_fork`` is pure: it reads the run's state and history and the fork's plan, and
raises ``InputError`` for what cannot be forked, naming what exists.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.engine.events import NodeReused, NodeSetByHand, NodeSucceeded
from keel.engine.plan import Plan
from keel.engine.state import NodeStatus, RunState
from keel.errors import InputError
from keel.spec.model import (
    AgentNode,
    ApprovalNode,
    LlmNode,
    MapNode,
    SignalNode,
    SubworkflowNode,
    TaskNode,
    WorkflowSpec,
)
from keel.spec.step_nodes import StepNode
from keel.spec.step_words import step_effect
from keel.store.records import StoredEvent

Action = Literal["reuse", "run", "set"]


@dataclass(frozen=True, slots=True)
class ForkStep:
    """One node of the fork: ``reuse`` its recorded output, ``run`` (be decided) again,
    or ``set`` to an output given for the fork (recorded as set by hand)."""

    node: str
    action: Action
    #: why, in words ("forked from here", "after book_car", "failed in run 3f9c2a1e")
    reason: str
    #: what running it again touches ("side effect", "calls a model"...); run only
    effects: tuple[str, ...] = ()
    #: what to know about reusing it (its effect was undone in the run...)
    warnings: tuple[str, ...] = ()
    #: reuse: the output, where it was recorded, the node's arguments there, whether
    #: the run undid its effect already
    output: Any = None
    from_seq: int = 0
    args: dict[str, Any] | None = None
    compensated: bool = False

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "node": self.node, "action": self.action, "reason": self.reason,
            "effects": list(self.effects), "warnings": list(self.warnings),
        }  # fmt: skip
        if self.action == "reuse":
            doc.update(from_seq=self.from_seq, compensated=self.compensated)
        return doc


@dataclass(frozen=True, slots=True)
class ForkPlan:
    """Everything a fork will do; ``document`` is what the CLI and the API show."""

    source: str
    source_status: str
    source_version: str
    spec: WorkflowSpec
    node: str
    input: Any
    #: the fields of the input the fork changed: path -> (before, after)
    input_changes: dict[str, tuple[Any, Any]]
    steps: list[ForkStep]
    notes: list[str] = field(default_factory=list)

    @property
    def again(self) -> list[ForkStep]:
        return [step for step in self.steps if step.action == "run"]

    def document(self) -> dict[str, Any]:
        return {
            "source": self.source, "source_status": self.source_status,
            "workflow": self.spec.name, "source_version": self.source_version,
            "version": self.spec.version, "node": self.node, "input": self.input,
            "input_changes": {path: {"before": before, "after": after}
                              for path, (before, after) in self.input_changes.items()},
            "nodes": [step.document() for step in self.steps], "notes": list(self.notes),
        }  # fmt: skip


def parse_sets(sets: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``{"input.x": value, "nodes.N.output": value}`` split into the input's changes
    (by path under ``input``; ``""`` for the whole input) and the nodes' outputs."""
    changes: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for key, value in sets.items():
        parts = key.split(".")
        if parts[0] == "input" and all(parts[1:]):
            changes[".".join(parts[1:])] = value
        elif len(parts) == 3 and parts[0] == "nodes" and parts[1] and parts[2] == "output":
            outputs[parts[1]] = value
        else:
            raise InputError(
                f"cannot set '{key}': set input.FIELD (a field of the run's input), input "
                "(the whole input) or nodes.NODE.output (a reused node's output)"
            )
    return changes, outputs


def changed_input(run_input: Any, changes: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The input with ``changes`` made (a path's missing objects are made), and what each
    changed path held before (None where it was missing)."""
    result = copy.deepcopy(run_input)
    before: dict[str, Any] = {}
    for path, value in changes.items():
        if path == "":
            before["input"], result = result, value
            continue
        *parents, last = path.split(".")
        target = result
        for depth, name in enumerate(parents):
            if not isinstance(target, dict):
                break
            target = target.setdefault(name, {})
            if not isinstance(target, dict):
                where = ".".join(["input", *parents[: depth + 1]])
                raise InputError(f"cannot set input.{path}: {where} is not an object")
        if not isinstance(target, dict):
            raise InputError(f"cannot set input.{path}: the run's input is not an object")
        before[f"input.{path}"] = target.get(last)
        target[last] = value
    return result, before


def descendants(plan: Plan, node: str) -> list[str]:
    """``node`` and every graph node after it, in plan order."""
    found = {node}
    stack = [node]
    while stack:
        for child in plan.nodes[stack.pop()].children:
            if child not in found:
                found.add(child)
                stack.append(child)
    return [node_id for node_id in plan.graph_nodes if node_id in found]


def recorded_at(history: Sequence[StoredEvent]) -> dict[str, int]:
    """Per node, the sequence number of the event that recorded its current output."""
    found: dict[str, int] = {}
    for stored in history:
        event = stored.event
        whole = not isinstance(event, NodeSucceeded) or event.item is None  # not an item
        if isinstance(event, NodeSucceeded | NodeSetByHand | NodeReused) and whole:
            found[event.node] = stored.seq
    return found


def effects(spec: WorkflowSpec, node_id: str) -> tuple[str, ...]:
    """What running ``node_id`` again touches outside the run, in words."""
    node = spec.node(node_id)
    said: list[str] = []
    if isinstance(node, TaskNode | MapNode) and node.side_effect:
        said.append("side effect")
    elif isinstance(node, TaskNode) and node.compensate is not None:
        said.append("side effect (it has a compensation)")
    if isinstance(node, StepNode):
        effect = step_effect(node)
        if effect is not None:
            said.append(f"side effect ({node.kind}: {effect})")
    if isinstance(node, LlmNode | AgentNode):
        said.append(f"calls model {node.model}")
    if isinstance(node, AgentNode):
        tools = [tool.tool_name for tool in node.tools if tool.side_effect]
        if tools:
            said.append(f"its tools {', '.join(tools)} have side effects")
    if isinstance(node, ApprovalNode):
        said.append("asks a person again")
        listeners = _notifiers(spec, "approval_requested")
        if listeners:
            said.append(f"notifies {listeners}")
    if isinstance(node, SignalNode):
        said.append(f"waits for signal '{node.signal}' again")
    if isinstance(node, SubworkflowNode):
        said.append(f"starts a child run of {node.workflow}")
    return tuple(said)


def _notifiers(spec: WorkflowSpec, event: str) -> str:
    """The notifiers of ``spec`` told of ``event``, in words ("" for none)."""
    names = []
    for notifier in spec.notify:
        if event in notifier.on:
            where = getattr(notifier, "url", None) or getattr(notifier, "function", None)
            if where is None:
                where = ", ".join(getattr(notifier, "to", ()))
            names.append(f"{notifier.kind} {where}")
    return "; ".join(names)


def _undone(source: RunState, node_id: str) -> NodeStatus | None:
    """The status of the compensation of ``node_id`` in the run (None: it has none, or
    its effect was not one the run had to undo)."""
    plan = source.plan
    step = plan.nodes[node_id].compensation if node_id in plan.nodes else None
    if step is None or node_id not in source.completed:
        return None
    return source.nodes[step].status


def _reuse(source: RunState, node_id: str, seq: int, plan: Plan) -> ForkStep:
    short = source.run_id[:8]
    undone = _undone(source, node_id)
    warnings: list[str] = []
    compensated = undone is NodeStatus.SUCCEEDED
    if compensated:
        warnings.append(
            f"run {short} undid it (compensate:{node_id}): reused as recorded all the "
            "same, and not undone again"
        )
    elif undone is NodeStatus.FAILED:
        warnings.append(
            f"its compensation failed in run {short}: its effect may remain; the fork "
            "undoes it if the fork fails"
        )
    elif plan.nodes[node_id].compensation is not None:
        warnings.append(f"the fork undoes it if the fork fails (what run {short} did)")
    node = source.nodes[node_id]
    return ForkStep(node_id, "reuse", f"as run {short} recorded it", warnings=tuple(warnings),
                    output=node.output, from_seq=seq, args=node.args,
                    compensated=compensated)  # fmt: skip


def plan_fork(
    source: RunState,
    history: Sequence[StoredEvent],
    plan: Plan,
    node: str,
    *,
    run_input: Any,
    input_changes: dict[str, tuple[Any, Any]] | None = None,
    outputs: Mapping[str, Any] | None = None,
) -> ForkPlan:
    """The fork of the run ``source`` (its state, from ``history``) from ``node``, as a
    run of ``plan`` (the run's or another version's) with ``run_input``; ``outputs``
    give reused nodes (or nodes that did not succeed, not after ``node``) an output."""
    outputs = outputs or {}
    known = ", ".join(plan.graph_nodes)
    name = plan.spec.name
    for given in (node, *outputs):
        if given not in plan.graph_nodes:
            raise InputError(f"workflow '{name}' has no node '{given}' (nodes: {known})")
    after = descendants(plan, node)
    again = set(after)
    for given in outputs:
        if given in again:
            raise InputError(
                f"cannot set the output of node '{given}': it runs again in this fork ("
                + ("it is the node forked from" if given == node else f"it is after {node}")
                + "); fork from a later node, or set the output of a node before it"
            )
    short = source.run_id[:8]
    seqs = recorded_at(history)
    steps: list[ForkStep] = []
    for node_id in plan.graph_nodes:
        if node_id in again:
            reason = "forked from here" if node_id == node else f"after {node}"
            steps.append(ForkStep(node_id, "run", reason, effects(plan.spec, node_id)))
        elif node_id in outputs:
            steps.append(ForkStep(node_id, "set", "output given for the fork",
                                  output=outputs[node_id]))  # fmt: skip
        elif node_id not in source.plan.graph_nodes:
            reason = f"not in the version of run {short}"
            steps.append(ForkStep(node_id, "run", reason, effects(plan.spec, node_id)))
        elif source.nodes[node_id].status is not NodeStatus.SUCCEEDED or node_id not in seqs:
            status = source.nodes[node_id].status.value
            reason = f"{_ENDED_AS.get(status, status.replace('_', ' '))} in run {short}"
            steps.append(ForkStep(node_id, "run", reason, effects(plan.spec, node_id)))
        else:
            steps.append(_reuse(source, node_id, seqs[node_id], plan))
    return ForkPlan(
        source=source.run_id, source_status=source.status.value,
        source_version=source.plan.spec.version, spec=plan.spec, node=node, input=run_input,
        input_changes=input_changes or {}, steps=steps, notes=_notes(plan, source),
    )  # fmt: skip


#: how a node that did not succeed in the run is said to have ended there
_ENDED_AS = {"waiting": "not reached", "scheduled": "not finished", "running": "not finished",
             "awaiting": "not finished"}  # fmt: skip


def _notes(plan: Plan, source: RunState) -> list[str]:
    """What the fork may do besides its nodes: its failure path, its notifiers."""
    notes = []
    spec = plan.spec
    if spec.version != source.plan.spec.version:
        notes.append(
            f"the fork runs version {spec.version[:12]}, not the run's "
            f"{source.plan.spec.version[:12]}: reused outputs were made by the run's version"
        )
    if spec.on_failure is not None:
        notes.append(f"if the fork fails, its failure handler {spec.on_failure.task} runs")
    if spec.notify:
        told = sorted({event for notifier in spec.notify for event in notifier.on})
        notes.append(f"the workflow's notifiers are told of the fork's {', '.join(told)}")
    return notes

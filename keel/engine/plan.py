"""A spec compiled for execution: parents, children and expressions, computed once.

The engine consults the plan on every event, so everything it needs per node is here,
precomputed: no graph scan and no expression parsing on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from keel.spec.expressions import Prepared, analyze, evaluate, prepare
from keel.spec.graph import (
    DependencyGraph,
    handled_by,
    node_arguments,
    safe_analyze,
    timeout_route,
)
from keel.spec.model import (
    AgentNode,
    CallNode,
    ExprArg,
    FailureHandler,
    JoinRule,
    LiteralArg,
    LlmBudget,
    LlmNode,
    MapNode,
    SideTask,
    SignalNode,
    TaskNode,
    WaitNode,
    WorkflowSpec,
)
from keel.spec.policies import (
    CircuitPolicy,
    ConcurrencyPolicy,
    NodeDefaults,
    RateLimitPolicy,
    RetryPolicy,
    effective_policies,
)
from keel.spec.step_nodes import StepNode, template_sites
from keel.spec.templates import template_expressions

#: kinds of steps outside the graph, run only on the run's failure path
COMPENSATION = "compensation"
RUN_FAILURE_HANDLER = "run_failure_handler"
#: the step id of the run's failure handler (":" cannot occur in a node id)
FAILURE_HANDLER_STEP = "run:on_failure"


def compensation_step(node_id: str) -> str:
    """The step id of a node's compensation (":" cannot occur in a node id)."""
    return f"compensate:{node_id}"


@dataclass(frozen=True, slots=True)
class NodePlan:
    id: str
    kind: str
    #: the function's import path
    task: str
    parents: tuple[str, ...]
    children: tuple[str, ...]
    join: JoinRule
    when: str | None
    #: argument name -> (is_expression, expression source or literal value)
    args: tuple[tuple[str, bool, object], ...]
    #: map nodes: the items expression and the parameter that receives each item
    items: str | None
    item_arg: str | None
    #: map nodes: at most this many items at once
    max_parallel: int | None
    max_attempts: int
    #: attempts, backoff and which errors retry (``max_attempts`` is ``retry.max_attempts``)
    retry: RetryPolicy
    #: seconds an attempt may take (enforced by the runtime), its queue and priority
    timeout: float | None
    queue: str
    priority: int
    #: nodes whose outputs this node's expressions may read: its parents (the graph
    #: already found every node an expression names; ``after`` ones add a few extra)
    reads: tuple[str, ...]
    #: ``fail``, ``continue`` or ``handler`` (then ``handler`` names the node)
    on_failure: str = "fail"
    handler: str | None = None
    #: handler nodes: the nodes whose failures this one handles
    handles: tuple[str, ...] = ()
    #: the step that undoes this node, if it declares a compensation
    compensation: str | None = None
    #: compensation steps: the node they undo
    undoes: str | None = None
    circuit: CircuitPolicy | None = None
    #: keys (expressions) whose limits the node's attempts count against, across workers
    concurrency: ConcurrencyPolicy | None = None
    rate_limit: RateLimitPolicy | None = None
    isolation: str = "thread"
    #: nodes that wait for something outside the run (approval, timer, signal, child
    #: run): their definition; they hold no worker and no slot while they wait
    wait: WaitNode | None = None
    #: approvals: the node their timeout is routed to
    timeout_route: str | None = None
    #: the most items a map may give (an ``llm`` node's ``max_items``): more fail it
    max_items: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    spec: WorkflowSpec
    nodes: dict[str, NodePlan]
    roots: tuple[str, ...]
    #: nodes read by the run's outputs
    output_reads: tuple[str, ...]
    #: at most this many attempts of one run at once (None: no limit)
    max_parallel: int | None
    #: the graph's nodes, in spec order; ``nodes`` also holds the failure-path steps
    #: (compensations, the run's failure handler), listed in ``side_steps``
    graph_nodes: tuple[str, ...] = ()
    side_steps: tuple[str, ...] = ()
    #: seconds from the start by which the run must have ended
    deadline: float | None = None
    #: seconds from the start after which a run not ended is late (it goes on)
    expected_duration: float | None = None
    #: the run's failure handler step, if the spec has one
    failure_handler: str | None = None
    #: whether a failing run has anything to do before it fails (compensate, handle)
    has_failure_path: bool = False
    #: signal name -> the signal nodes that wait for it, in spec order
    signal_nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: whether any node waits (approval, timer, signal, child run)
    has_waits: bool = False
    #: whether any node starts a child run (else a run of this plan never has one)
    starts_children: bool = False
    #: the nodes' expressions (arguments, items, conditions), ready to evaluate
    expressions: dict[str, Prepared] = field(default_factory=dict)

    def evaluate(self, source: str, variables: dict[str, Any]) -> Any:
        """An expression of this plan over ``variables`` (any other: as ``evaluate``)."""
        prepared = self.expressions.get(source)
        return evaluate(source, variables) if prepared is None else prepared.evaluate(variables)

    @property
    def graph_count(self) -> int:
        return len(self.graph_nodes)


def _reads(sources: list[str]) -> tuple[str, ...]:
    found: set[str] = set()
    for source in sources:
        found |= analyze(source).node_refs
    return tuple(sorted(found))


def _side_step(
    step_id: str, kind: str, side: SideTask, defaults: NodeDefaults, undoes: str | None = None
) -> NodePlan:
    retry = side.retry or defaults.retry or RetryPolicy()
    return NodePlan(
        id=step_id, kind=kind, task=side.task, parents=(), children=(),
        join=JoinRule.ALL_DONE, when=None, args=(), items=None, item_arg=None,
        max_parallel=None, max_attempts=retry.max_attempts, retry=retry,
        timeout=side.timeout if side.timeout is not None else defaults.timeout,
        queue=defaults.queue or "default", priority=defaults.priority or 0, reads=(),
        undoes=undoes, isolation=side.isolation or "thread",
    )  # fmt: skip


def _wait_step(
    node: WaitNode,
    parents: tuple[str, ...],
    children: tuple[str, ...],
    args: tuple[tuple[str, bool, object], ...],
    handles: tuple[str, ...],
) -> NodePlan:
    """A node that waits: one "attempt" (the wait), never retried, on no queue."""
    on_failure = node.on_failure
    return NodePlan(
        id=node.id, kind=node.kind, task="", parents=parents, children=children,
        join=node.join, when=node.when, args=args, items=None, item_arg=None,
        max_parallel=None, max_attempts=1, retry=RetryPolicy(), timeout=None,
        queue="", priority=0, reads=parents,
        on_failure="handler" if isinstance(on_failure, FailureHandler) else on_failure,
        handler=on_failure.handler if isinstance(on_failure, FailureHandler) else None,
        handles=handles, wait=node, timeout_route=timeout_route(node),
    )  # fmt: skip


def _values_read(sources: Iterable[str]) -> str:
    """One expression giving what ``sources`` read of the run: ``input`` (if any reads
    it) and the output of each upstream node they name, so a task can fill templates
    itself (the engine records these values, never what the task fills in)."""
    reads_input, upstream = False, set[str]()
    for source in sources:
        info = safe_analyze(source)
        if info is not None:
            reads_input |= any(path[:1] == ("input",) for path in info.paths)
            upstream |= info.node_refs
    parts = ['"input": input'] if reads_input else []
    nodes = ", ".join(f'"{ref}": {{"output": nodes.{ref}.output}}' for ref in sorted(upstream))
    parts.append(f'"nodes": {{{nodes}}}')
    return "{" + ", ".join(parts) + "}"


def model_step_args(
    node: LlmNode | AgentNode, budget: LlmBudget | None
) -> list[tuple[str, bool, object]]:
    """The arguments of keel's task that runs a node asking a model: the node's
    definition (``step``), and the values its templates read (``values``: ``input`` and
    the upstream outputs, one expression evaluated like any argument), so the task fills
    the templates itself: a map's templates read each ``item`` too."""
    sources = [*template_expressions(node.prompt), *template_expressions(node.system)]
    step = node.model_dump(mode="json", exclude_defaults=True, exclude=_GRAPH_FIELDS)
    step["kind"] = node.kind
    if budget is not None:  # the workflow's, applied by the step to each request
        step["budget"] = budget.model_dump(mode="json", exclude_defaults=True)
    return [("step", False, step), ("values", True, _values_read(sources))]


def builtin_step_args(node: StepNode, timeout: float | None) -> list[tuple[str, bool, object]]:
    """The arguments of keel's task that runs a built-in step: its definition (``step``,
    templates unfilled, with the attempt's ``timeout``, which a shell step enforces on
    its process group) and the values its templates read (``values``). The worker fills
    the templates, secrets included: the engine never sees a secret's value."""
    sources = [source for value in node.templates().values()
               for _, source in template_sites(value, ())]  # fmt: skip
    step = node.model_dump(mode="json", exclude_defaults=True, exclude=_GRAPH_FIELDS)
    step["kind"] = node.kind
    if timeout is not None:
        step["timeout"] = timeout
    return [("step", False, step), ("values", True, _values_read(sources))]


#: what a model step's task does not need of its node: where it sits in the graph and
#: the engine's own policies
_GRAPH_FIELDS = {
    "after", "when", "join", "on_failure", "for_each", "max_parallel", "retry", "timeout",
    "queue", "priority", "concurrency", "rate_limit", "circuit", "isolation", "description",
}  # fmt: skip


def compile_plan(spec: WorkflowSpec) -> Plan:
    """Compile a valid spec (validate it first: this assumes references resolve)."""
    graph = DependencyGraph.from_spec(spec)
    handlers = handled_by(spec)
    nodes: dict[str, NodePlan] = {}
    side_steps: list[NodePlan] = []
    signal_nodes: dict[str, list[str]] = {}
    for node in spec.nodes:
        if isinstance(node, SignalNode):
            signal_nodes.setdefault(node.signal, []).append(node.id)
        args: list[tuple[str, bool, object]] = []
        for name, arg in node_arguments(node)[1].items():
            if isinstance(arg, ExprArg):
                args.append((name, True, arg.expr))
            elif isinstance(arg, LiteralArg):
                args.append((name, False, arg.value))
        if isinstance(node, LlmNode | AgentNode):
            args = model_step_args(node, spec.llm_budget)
        items = node.items if isinstance(node, MapNode) else None
        if isinstance(node, LlmNode):
            items = node.for_each
        parents = tuple(graph.parents[node.id])
        on_failure = node.on_failure
        if not isinstance(node, CallNode):
            nodes[node.id] = _wait_step(node, parents, tuple(graph.children[node.id]),
                                        tuple(args), tuple(handlers.get(node.id, ())))  # fmt: skip
            continue
        policies = effective_policies(node, spec.defaults)
        if isinstance(node, StepNode):
            args = builtin_step_args(node, policies.timeout)
        compensation = None
        if isinstance(node, TaskNode) and node.compensate is not None:
            compensation = compensation_step(node.id)
            side_steps.append(
                _side_step(compensation, COMPENSATION, node.compensate, spec.defaults, node.id)
            )
        nodes[node.id] = NodePlan(
            id=node.id,
            kind=node.kind,
            task=node.task,
            parents=parents,
            children=tuple(graph.children[node.id]),
            join=node.join,
            when=node.when,
            args=tuple(args),
            items=items,
            item_arg=node.item_arg if isinstance(node, MapNode) else "item" if items else None,
            max_parallel=node.max_parallel if isinstance(node, MapNode | LlmNode) else None,
            max_attempts=policies.retry.max_attempts,
            retry=policies.retry,
            timeout=policies.timeout,
            queue=policies.queue,
            priority=policies.priority,
            reads=parents,
            on_failure="handler" if isinstance(on_failure, FailureHandler) else on_failure,
            handler=on_failure.handler if isinstance(on_failure, FailureHandler) else None,
            handles=tuple(handlers.get(node.id, ())),
            compensation=compensation,
            circuit=policies.circuit,
            concurrency=policies.concurrency,
            rate_limit=policies.rate_limit,
            isolation=policies.isolation,
            max_items=node.max_items if isinstance(node, LlmNode) else None,
        )
    graph_nodes = tuple(nodes)
    if spec.on_failure is not None:
        side_steps.append(
            _side_step(FAILURE_HANDLER_STEP, RUN_FAILURE_HANDLER, spec.on_failure, spec.defaults)
        )
    for step in side_steps:
        nodes[step.id] = step
    return Plan(
        spec=spec,
        nodes=nodes,
        roots=tuple(graph.roots()),
        output_reads=_reads(list(spec.outputs.values())),
        max_parallel=spec.max_parallel,
        graph_nodes=graph_nodes,
        side_steps=tuple(step.id for step in side_steps),
        deadline=spec.deadline,
        expected_duration=spec.expected_duration,
        failure_handler=FAILURE_HANDLER_STEP if spec.on_failure is not None else None,
        has_failure_path=bool(side_steps),
        signal_nodes={name: tuple(ids) for name, ids in signal_nodes.items()},
        has_waits=any(node.wait is not None for node in nodes.values()),
        starts_children=any(node.kind == "subworkflow" for node in nodes.values()),
        expressions=_prepared(nodes.values()),
    )


def _prepared(nodes: Iterable[NodePlan]) -> dict[str, Prepared]:
    """Every expression the engine evaluates for the nodes, prepared once."""
    sources: set[str] = set()
    for node in nodes:
        sources.update(str(value) for _, is_expression, value in node.args if is_expression)
        sources.update(source for source in (node.items, node.when) if source is not None)
    return {source: prepare(source) for source in sources}

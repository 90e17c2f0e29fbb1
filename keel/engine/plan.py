"""A spec compiled for execution: parents, children and expressions, computed once.

The engine consults the plan on every event, so everything it needs per node is here,
precomputed: no graph scan and no expression parsing on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.spec.expressions import analyze
from keel.spec.graph import DependencyGraph
from keel.spec.model import ExprArg, JoinRule, LiteralArg, MapNode, WorkflowSpec
from keel.spec.policies import RetryPolicy, effective_policies


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


@dataclass(frozen=True, slots=True)
class Plan:
    spec: WorkflowSpec
    nodes: dict[str, NodePlan]
    roots: tuple[str, ...]
    #: nodes read by the run's outputs
    output_reads: tuple[str, ...]
    #: at most this many attempts of one run at once (None: no limit)
    max_parallel: int | None


def _reads(sources: list[str]) -> tuple[str, ...]:
    found: set[str] = set()
    for source in sources:
        found |= analyze(source).node_refs
    return tuple(sorted(found))


def compile_plan(spec: WorkflowSpec) -> Plan:
    """Compile a valid spec (validate it first: this assumes references resolve)."""
    graph = DependencyGraph.from_spec(spec)
    nodes: dict[str, NodePlan] = {}
    for node in spec.nodes:
        args: list[tuple[str, bool, object]] = []
        for name, arg in node.args.items():
            if isinstance(arg, ExprArg):
                args.append((name, True, arg.expr))
            elif isinstance(arg, LiteralArg):
                args.append((name, False, arg.value))
        items = node.items if isinstance(node, MapNode) else None
        parents = tuple(graph.parents[node.id])
        policies = effective_policies(node, spec.defaults)
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
            item_arg=node.item_arg if isinstance(node, MapNode) else None,
            max_parallel=node.max_parallel if isinstance(node, MapNode) else None,
            max_attempts=policies.retry.max_attempts,
            retry=policies.retry,
            timeout=policies.timeout,
            queue=policies.queue,
            priority=policies.priority,
            reads=parents,
        )
    return Plan(
        spec=spec,
        nodes=nodes,
        roots=tuple(graph.roots()),
        output_reads=_reads(list(spec.outputs.values())),
        max_parallel=spec.max_parallel,
    )

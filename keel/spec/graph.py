"""The dependency graph of a spec: edges come from expression references and ``after``.

Data flow is the dependency graph: a node depends on every node whose output its
arguments, condition, items or concurrency key read, plus those listed in ``after``.
References to unknown nodes are left out here (validation reports them).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from keel.errors import ExpressionError
from keel.spec.expressions import ExpressionInfo, analyze
from keel.spec.model import (
    AgentNode,
    AnyNode,
    ApprovalNode,
    Arg,
    CallNode,
    ExprArg,
    FailureHandler,
    LlmNode,
    MapNode,
    SubworkflowNode,
    TaskNode,
    TimeoutRoute,
    TimerNode,
    WorkflowSpec,
)
from keel.spec.step_nodes import StepNode, template_sites
from keel.spec.templates import template_expressions


@dataclass(frozen=True)
class ExpressionSite:
    """Where an expression sits in a node, for error messages and line numbers."""

    node: str
    loc: tuple[str | int, ...]
    source: str


def node_arguments(node: AnyNode) -> tuple[str, dict[str, Arg]]:
    """The field holding a node's mapped values (a task's ``args``, a child run's
    ``input``) and those values; empty for nodes that take none."""
    if isinstance(node, TaskNode | MapNode):
        return "args", node.args
    if isinstance(node, SubworkflowNode):
        return "input", node.input
    return "args", {}


def node_expressions(node: AnyNode, index: int) -> Iterator[ExpressionSite]:
    base: tuple[str | int, ...] = ("nodes", index)
    field_name, arguments = node_arguments(node)
    for name, arg in arguments.items():
        if isinstance(arg, ExprArg):
            yield ExpressionSite(node.id, (*base, field_name, name, "expr"), arg.expr)
    if node.when is not None:
        yield ExpressionSite(node.id, (*base, "when"), node.when)
    if isinstance(node, MapNode):
        yield ExpressionSite(node.id, (*base, "items"), node.items)
    if isinstance(node, CallNode) and node.concurrency is not None:
        yield ExpressionSite(node.id, (*base, "concurrency", "key"), node.concurrency.key)
    if isinstance(node, CallNode) and node.rate_limit is not None:
        yield ExpressionSite(node.id, (*base, "rate_limit", "key"), node.rate_limit.key)
    if isinstance(node, ApprovalNode):
        for source in template_expressions(node.description):
            yield ExpressionSite(node.id, (*base, "description"), source)
    if isinstance(node, TimerNode) and node.until is not None:
        yield ExpressionSite(node.id, (*base, "until"), node.until)
    if isinstance(node, LlmNode | AgentNode):
        for field_name in ("prompt", "system"):
            for source in template_expressions(getattr(node, field_name)):
                yield ExpressionSite(node.id, (*base, field_name), source)
    if isinstance(node, LlmNode) and node.for_each is not None:
        yield ExpressionSite(node.id, (*base, "for_each"), node.for_each)
    if isinstance(node, StepNode):
        for field_name, value in node.templates().items():
            for loc, source in template_sites(value, (*base, field_name)):
                yield ExpressionSite(node.id, loc, source)


def timeout_route(node: AnyNode) -> str | None:
    """The node an approval's timeout is routed to, if it names one."""
    if isinstance(node, ApprovalNode) and isinstance(node.on_timeout, TimeoutRoute):
        return node.on_timeout.route
    return None


def handled_by(spec: WorkflowSpec) -> dict[str, list[str]]:
    """Handler node -> the nodes whose failures it handles (each is one of its parents:
    a handler is decided when what it handles has ended). An approval whose timeout is
    routed to a node is handled by it too (for that failure only)."""
    handled: dict[str, list[str]] = {}
    for node in spec.nodes:
        if isinstance(node.on_failure, FailureHandler):
            handled.setdefault(node.on_failure.handler, []).append(node.id)
        route = timeout_route(node)
        if route is not None and node.id not in handled.get(route, ()):
            handled.setdefault(route, []).append(node.id)
    return handled


def safe_analyze(source: str) -> ExpressionInfo | None:
    try:
        return analyze(source)
    except ExpressionError:
        return None


def expression_references(sites: Iterable[ExpressionSite]) -> list[str]:
    """The nodes read by these expressions, in the graph's order (each expression's
    references sorted, in site order; repeats kept, the graph drops them)."""
    found: list[str] = []
    for site in sites:
        info = safe_analyze(site.source)
        if info is not None:
            found.extend(sorted(info.node_refs))
    return found


@dataclass
class DependencyGraph:
    """Parents and children of every node, in spec order (deterministic everywhere)."""

    order: list[str]
    parents: dict[str, list[str]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_spec(
        cls,
        spec: WorkflowSpec,
        *,
        references: Mapping[int, Sequence[str]] | None = None,
        handled: Mapping[str, Sequence[str]] | None = None,
    ) -> DependencyGraph:
        """The graph of ``spec``. ``references`` (node index -> the nodes its expressions
        read, as ``expression_references`` lists them) and ``handled`` (``handled_by``)
        spare a caller that has them already, validation, a second walk of the spec."""
        ids = [node.id for node in spec.nodes]
        known = set(ids)
        graph = cls(order=list(dict.fromkeys(ids)))
        for node_id in graph.order:
            graph.parents[node_id] = []
            graph.children[node_id] = []
        if handled is None:
            handled = handled_by(spec)
        seen: set[str] = set()
        for index, node in enumerate(spec.nodes):
            if node.id in seen:
                continue  # a duplicate id; validation reports it
            seen.add(node.id)
            wanted: list[str] = []
            if references is None:
                wanted.extend(expression_references(node_expressions(node, index)))
            else:
                wanted.extend(references.get(index, ()))
            wanted.extend(node.after)
            wanted.extend(handled.get(node.id, ()))
            for parent in dict.fromkeys(wanted):
                if parent in known and parent != node.id:  # self-loops are reported apart
                    graph.parents[node.id].append(parent)
                    graph.children[parent].append(node.id)
        return graph

    def find_cycle(self) -> list[str] | None:
        """One cycle as a path ``[a, b, c, a]``, or None if the graph is acyclic."""
        white, grey, black = 0, 1, 2
        colour = dict.fromkeys(self.order, white)
        for start in self.order:
            if colour[start] != white:
                continue
            stack: list[tuple[str, Iterator[str]]] = [(start, iter(self.children[start]))]
            colour[start] = grey
            path = [start]
            while stack:
                current, children = stack[-1]
                child = next(children, None)
                if child is None:
                    colour[current] = black
                    stack.pop()
                    path.pop()
                elif colour[child] == grey:
                    return [*path[path.index(child) :], child]
                elif colour[child] == white:
                    colour[child] = grey
                    path.append(child)
                    stack.append((child, iter(self.children[child])))
        return None

    def topological_order(self) -> list[str]:
        """Kahn's order, ties broken by spec order. Raises ValueError on a cycle."""
        waiting = {node: len(parents) for node, parents in self.parents.items()}
        position = {node: i for i, node in enumerate(self.order)}
        ready = [node for node in self.order if waiting[node] == 0]
        result: list[str] = []
        heap = [(position[node], node) for node in ready]
        heapq.heapify(heap)
        while heap:
            _, node = heapq.heappop(heap)
            result.append(node)
            for child in self.children[node]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(heap, (position[child], child))
        if len(result) != len(self.order):
            raise ValueError("the graph has a cycle")
        return result

    def depths(self) -> dict[str, int]:
        """Longest distance from a root: nodes of equal depth can run side by side."""
        depth: dict[str, int] = {}
        for node in self.topological_order():
            depth[node] = max((depth[p] + 1 for p in self.parents[node]), default=0)
        return depth

    def roots(self) -> list[str]:
        return [node for node in self.order if not self.parents[node]]

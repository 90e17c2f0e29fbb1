"""What changed between two versions of a workflow: nodes, edges and workflow policies.

Before a new version replaces the deployed one, a reviewer wants the change, not two
whole definitions: which nodes were added or removed, which fields of a node changed
(its task, arguments, condition, retry policy, compensation, join rule, queue...),
which dependencies appeared or went, and which workflow-wide policies changed (failure
handler, budgets, deadline, input schema...).

Nodes are matched by id (a renamed node is one removed and one added). Fields are
compared as the canonical JSON has them (``keel.spec.canonical``), with a field left at
its default shown as that default when the other side sets it (``join: "all_done" ->
"none_failed"``), so a diff never reports what the version hash ignores. Edges are the
dependency graph's (``DependencyGraph``: what ``compile_plan`` makes each node's
parents), so the diff cannot disagree with what runs. Pure: no I/O.

The diff keeps the union of both graphs, each node and edge marked ``added``,
``removed``, ``changed`` or ``same``, in a stable order (the second version's order,
each removed node after the node it followed), so a picture of it
(``keel.spec.render_diff``) and its JSON document are deterministic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from keel.spec.canonical import canonical_data, canonical_json
from keel.spec.data_diff import Change, change_document, change_of, data_changes
from keel.spec.graph import DependencyGraph
from keel.spec.model import AnyNode, WorkflowSpec
from keel.spec.render import node_summary

State = Literal["added", "removed", "changed", "same"]


@dataclass(frozen=True, slots=True)
class NodeDiff:
    id: str
    state: State
    #: the node's kind and what it does, in the second version (the first, if removed)
    kind: str
    summary: str
    #: the fields that changed (``when``, ``retry``...), in the canonical JSON's order
    fields: tuple[str, ...] = ()
    #: each difference, its path inside the node (``retry.max_attempts``)
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class EdgeDiff:
    """A dependency: ``child`` runs after ``parent`` (and may read its output)."""

    parent: str
    child: str
    state: Literal["added", "removed", "same"]


@dataclass(frozen=True, slots=True)
class VersionSide:
    workflow: str
    version: str


@dataclass(frozen=True, slots=True)
class SpecDiff:
    a: VersionSide
    b: VersionSide
    #: every node of either version, marked
    nodes: tuple[NodeDiff, ...]
    #: every edge of either version, marked
    edges: tuple[EdgeDiff, ...]
    #: workflow-level differences (paths from the spec's top: ``deadline``,
    #: ``on_failure.task``, ``defaults.retry.max_attempts``...)
    workflow: tuple[Change, ...]

    def with_state(self, state: State) -> list[NodeDiff]:
        return [node for node in self.nodes if node.state == state]

    def edges_with(self, state: Literal["added", "removed"]) -> list[EdgeDiff]:
        return [edge for edge in self.edges if edge.state == state]

    @property
    def same(self) -> bool:
        """Whether the two define the same workflow (then their versions are equal)."""
        return (
            not self.workflow
            and all(n.state == "same" for n in self.nodes)
            and all(e.state == "same" for e in self.edges)
        )


def _plain(data: Any) -> Any:
    """JSON as the canonical text has it (integral floats as ints), so a duration
    written ``30`` in one version and ``30.0`` in another is no change."""
    return json.loads(canonical_json(data))


def _filled(written: dict[str, Any], full: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``written`` (defaults left out) with the defaults of the keys ``other`` sets,
    where the default is a value (a ``None`` default stays missing: "not set")."""
    filled = dict(written)
    for key in other:
        if key not in filled and full.get(key) is not None:
            filled[key] = full[key]
    return filled


def _sides(a: Any, b: Any, written_a: dict[str, Any], written_b: dict[str, Any]) -> list[Change]:
    full_a, full_b = _plain(a.model_dump(mode="json")), _plain(b.model_dump(mode="json"))
    return data_changes(
        _filled(written_a, full_a, written_b), _filled(written_b, full_b, written_a)
    )


def _node_diff(old: AnyNode | None, new: AnyNode | None, written: tuple[Any, Any]) -> NodeDiff:
    shown = new if new is not None else old
    assert shown is not None
    if old is None or new is None:
        return NodeDiff(shown.id, "added" if old is None else "removed", shown.kind,
                        node_summary(shown))  # fmt: skip
    changes = _sides(old, new, *written)
    fields = tuple(dict.fromkeys(str(change.path[0]) for change in changes))
    return NodeDiff(new.id, "changed" if changes else "same", new.kind, node_summary(new),
                    fields, tuple(changes))  # fmt: skip


def _union(first: list[str], second: list[str]) -> list[str]:
    """The ids of both orders: ``second``'s, each id only ``first`` has placed right
    after the id it followed there (at the start if it was first)."""
    in_second = set(second)
    after: dict[str | None, list[str]] = {}
    previous: str | None = None
    for node_id in first:
        if node_id not in in_second:
            after.setdefault(previous, []).append(node_id)
        previous = node_id
    order: list[str] = []
    for anchor in [None, *second]:
        if anchor is not None:
            order.append(anchor)
        stack = list(reversed(after.get(anchor, [])))
        while stack:  # a removed id, then those that followed it, before the next one
            node_id = stack.pop()
            order.append(node_id)
            stack.extend(reversed(after.get(node_id, [])))
    return order


def _edges(graph: DependencyGraph) -> list[tuple[str, str]]:
    return [(parent, child) for child in graph.order for parent in graph.parents[child]]


def diff_specs(a: WorkflowSpec, b: WorkflowSpec) -> SpecDiff:
    """How ``b`` differs from ``a`` (both valid specs, usually of one workflow)."""
    graph_a, graph_b = DependencyGraph.from_spec(a), DependencyGraph.from_spec(b)
    data_a, data_b = _plain(canonical_data(a)), _plain(canonical_data(b))
    written_a = {node["id"]: node for node in data_a.pop("nodes")}
    written_b = {node["id"]: node for node in data_b.pop("nodes")}
    nodes = []
    for node_id in _union(list(graph_a.order), list(graph_b.order)):
        old, new = a.node_map.get(node_id), b.node_map.get(node_id)
        written = (written_a.get(node_id, {}), written_b.get(node_id, {}))
        nodes.append(_node_diff(old, new, written))
    edges_a, edges_b = _edges(graph_a), _edges(graph_b)
    known_a, known_b = set(edges_a), set(edges_b)
    edges = [EdgeDiff(p, c, "same" if (p, c) in known_a else "added") for p, c in edges_b]
    edges += [EdgeDiff(p, c, "removed") for p, c in edges_a if (p, c) not in known_b]
    nodes_field = {"nodes"}
    full_a = {k: v for k, v in _plain(a.model_dump(mode="json")).items() if k not in nodes_field}
    full_b = {k: v for k, v in _plain(b.model_dump(mode="json")).items() if k not in nodes_field}
    workflow = data_changes(_filled(data_a, full_a, data_b), _filled(data_b, full_b, data_a))
    return SpecDiff(VersionSide(a.name, a.version), VersionSide(b.name, b.version),
                    tuple(nodes), tuple(edges), tuple(workflow))  # fmt: skip


# --- as JSON ------------------------------------------------------------------------------


def spec_diff_document(diff: SpecDiff) -> dict[str, Any]:
    """The diff as JSON (``keel diff --json``, ``GET /diff``): ``a`` and ``b`` (workflow
    and full version), ``same``, every node with its ``state`` (added, removed, changed,
    same), ``fields`` and ``changes``, every edge with its state, and the workflow-level
    ``changes``; each change as ``keel.spec.data_diff.change_document``."""
    return {
        "kind": "versions",
        "a": {"workflow": diff.a.workflow, "version": diff.a.version},
        "b": {"workflow": diff.b.workflow, "version": diff.b.version},
        "same": diff.same,
        "nodes": [{"id": n.id, "state": n.state, "kind": n.kind, "summary": n.summary,
                   "fields": list(n.fields),
                   "changes": [change_document(c) for c in n.changes]}
                  for n in diff.nodes],
        "edges": [{"parent": e.parent, "child": e.child, "state": e.state} for e in diff.edges],
        "workflow": [change_document(c) for c in diff.workflow],
    }  # fmt: skip


def spec_diff_of(doc: dict[str, Any]) -> SpecDiff:
    """``spec_diff_document`` read back (a diff that came over HTTP)."""
    return SpecDiff(
        VersionSide(doc["a"]["workflow"], doc["a"]["version"]),
        VersionSide(doc["b"]["workflow"], doc["b"]["version"]),
        tuple(NodeDiff(n["id"], n["state"], n["kind"], n["summary"], tuple(n["fields"]),
                       tuple(change_of(c) for c in n["changes"])) for n in doc["nodes"]),
        tuple(EdgeDiff(e["parent"], e["child"], e["state"]) for e in doc["edges"]),
        tuple(change_of(c) for c in doc["workflow"]),
    )  # fmt: skip

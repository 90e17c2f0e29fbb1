"""Pictures of a workflow: its nodes and edges as text, Mermaid, Graphviz DOT or JSON.

A spec is easier to review as a graph than as YAML: which nodes run side by side, which
are conditional, which fan out over a list. This module turns a ``WorkflowSpec`` into
text for a terminal (``ascii``), for Markdown and GitHub (``mermaid``), for Graphviz
(``dot``) or for other tools (``json``).

Invariants: rendering is pure (no I/O) and deterministic: nodes appear in spec order
within a layer and edges in the order of ``DependencyGraph``, so the same spec always
gives the same text. Edges come from ``DependencyGraph``, the same place the engine
takes them from, so the picture cannot disagree with what runs.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable
from typing import Any

from keel.spec.graph import DependencyGraph
from keel.spec.model import (
    AgentNode,
    AnyNode,
    ApprovalNode,
    CallNode,
    JoinRule,
    LlmNode,
    MapNode,
    SignalNode,
    SubworkflowNode,
    TimerNode,
    WorkflowSpec,
)
from keel.spec.step_nodes import StepNode
from keel.spec.step_words import step_summary

FORMATS = ("ascii", "mermaid", "dot", "json")

__all__ = ["FORMATS", "render", "render_ascii", "render_dot", "render_json", "render_mermaid"]

_MARK_TASK, _MARK_MAP, _MARK_WHEN, _MARK_WAIT = "●", "▦", "◆", "⧗"
#: words Mermaid reads as syntax, so they cannot be node ids there
_MERMAID_RESERVED = frozenset(
    {"end", "graph", "flowchart", "subgraph", "style", "class", "classdef", "click",
     "linkstyle", "direction", "default", "call", "href"}
)  # fmt: skip


def render(spec: WorkflowSpec, fmt: str, *, width: int | None = None) -> str:
    """Render ``spec`` in one of ``FORMATS``; ``ascii`` fitted to ``width`` columns."""
    renderers: dict[str, Callable[[WorkflowSpec], str]] = {
        "ascii": lambda spec: render_ascii(spec, width),
        "mermaid": render_mermaid,
        "dot": render_dot,
        "json": render_json,
    }
    try:
        renderer = renderers[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}") from None
    return renderer(spec)


def _nodes(spec: WorkflowSpec, graph: DependencyGraph) -> list[AnyNode]:
    return [spec.node_map[node_id] for node_id in graph.order]


def node_summary(node: AnyNode) -> str:
    """What a node does, in a few words: the function it calls, what a built-in step
    calls (``POST api.example.com/notes``), or what it waits for."""
    if isinstance(node, LlmNode | AgentNode):
        each = " for each item" if isinstance(node, LlmNode) and node.for_each else ""
        return f"{node.provider}:{node.model}{each}"
    if isinstance(node, StepNode):
        return step_summary(node)
    if isinstance(node, CallNode):
        return node.task
    if isinstance(node, ApprovalNode):
        who = ", ".join(node.assignees) or node.role
        return f"approval {node.title!r}" + (f" by {who}" if who else "")
    if isinstance(node, TimerNode):
        return f"wait {node.duration:g} s" if node.duration else f"wait until {node.until}"
    if isinstance(node, SignalNode):
        return f"signal {node.signal!r}"
    assert isinstance(node, SubworkflowNode)
    return f"workflow {node.workflow} {node.version[:12]}"


def _one_line(text: str) -> str:
    """Expressions may hold multi-line string literals; a row or label needs one line."""
    return " ".join(text.splitlines())


def _extras(node: AnyNode) -> list[str]:
    """The conditions on a node besides its parents: ``when`` and a non-default join."""
    extras = []
    if node.when is not None:
        extras.append(f"when: {_one_line(node.when)}")
    if node.join is not JoinRule.NONE_FAILED:
        extras.append(f"join: {node.join.value}")
    return extras


# --- ascii ------------------------------------------------------------------------------


def render_ascii(spec: WorkflowSpec, width: int | None = None) -> str:
    """Plain text for a terminal: a header, then the nodes layer by layer, then outputs.

    Nodes in one layer have no path between them, so they may run side by side. Markers:
    ``●`` task, ``▦`` map (with its items and item argument), ``◆`` conditional, ``⧗`` a
    node that waits (approval, timer, signal, child run).

    Each node is one row of aligned columns when they fit in ``width`` (None: any
    width). Otherwise what is long goes on lines of its own under the row: a map's items,
    the condition, and (when even they do not fit) the parents; and lines still too
    long wrap under themselves.
    """
    graph = DependencyGraph.from_spec(spec)
    try:
        depths = graph.depths()
    except ValueError:
        cycle = " -> ".join(graph.find_cycle() or [])
        raise ValueError(
            f"cannot lay out workflow '{spec.name}' in layers: its nodes form a cycle "
            f"({cycle}); remove one of these dependencies"
        ) from None
    limit = width if width is not None else math.inf
    lines = [f"{spec.name}  version {spec.version[:12]}"]
    if spec.description:
        lines.extend(_wrapped(_one_line(spec.description), limit, 0))
    properties = spec.input_schema.get("properties")
    names = list(properties) if isinstance(properties, dict) else []
    lines.extend(_wrapped(f"input: {', '.join(names) if names else '(none)'}", limit, 7))

    layers: dict[int, list[str]] = {}
    for node_id in graph.order:
        layers.setdefault(depths[node_id], []).append(node_id)
    rows = _ascii_rows(spec, graph, limit)
    for depth in sorted(layers):
        members = layers[depth]
        lines.append(f"layer {depth + 1}" + ("   (parallel)" if len(members) > 1 else ""))
        for node_id in members:
            lines.extend(rows[node_id])
    if not layers:
        lines.append("(no nodes)")

    name_width = max((len(name) for name in spec.outputs), default=0)
    outputs = [f"{name.ljust(name_width)} = {_one_line(e)}" for name, e in spec.outputs.items()]
    for index, output in enumerate(outputs or ["(none)"]):
        lines.extend(_wrapped(("outputs: " if index == 0 else " " * 9) + output, limit,
                              9 + name_width + 3 if outputs else 9))  # fmt: skip
    return "\n".join(lines) + "\n"


def _ascii_rows(spec: WorkflowSpec, graph: DependencyGraph, limit: float) -> dict[str, list[str]]:
    """Each node's lines: its row, then (when the row would be too wide) its notes."""
    cells: dict[str, list[str]] = {}  # the mark and id, kind, what it does, parents
    overs: dict[str, list[str]] = {}  # a map's items
    extras: dict[str, list[str]] = {}  # its condition and join rule
    for node in _nodes(spec, graph):
        mark = (_MARK_WHEN if node.when else _MARK_MAP if isinstance(node, MapNode)
                else _MARK_TASK if isinstance(node, CallNode) else _MARK_WAIT)  # fmt: skip
        parents = graph.parents[node.id]
        arrow = f"← {', '.join(parents)}" if parents else ""
        cells[node.id] = [f"{mark} {node.id}", node.kind, node_summary(node), arrow]
        overs[node.id] = (
            [f"over {_one_line(node.items)} (item → {node.item_arg})"]
            if isinstance(node, MapNode) else []
        )  # fmt: skip
        extras[node.id] = _extras(node)

    # each node on one row, as wide as it takes
    wide = _aligned({
        node_id: [head, kind, "  ".join([what, *overs[node_id]]), arrow,
                  "   ".join(extras[node_id])]
        for node_id, (head, kind, what, arrow) in cells.items()
    })  # fmt: skip
    if max((len(line) for line in wide.values()), default=0) <= limit:
        return {node_id: [line] for node_id, line in wide.items()}

    # too wide: the map's items and the conditions under the row; then the parents too
    # when they do not fit in line
    indent = min(2 + max(len(row[0]) for row in cells.values()) + 2, 24)
    narrow = _aligned(cells)
    in_line = max(len(line) for line in narrow.values()) <= limit
    widths = _widths(cells, 3)
    result: dict[str, list[str]] = {}
    for node_id, row in cells.items():
        under = overs[node_id] + extras[node_id]
        line = narrow[node_id]
        if not in_line:
            line, arrow = _aligned({node_id: row[:3]}, widths)[node_id], row[3]
            if arrow and len(line) + 2 + len(arrow) <= limit:
                line += "  " + arrow
            elif arrow:
                under.insert(0, arrow)
        lines = _wrapped(line, limit, indent)
        for note in under:
            lines.extend(_wrapped(" " * indent + note, limit, indent + 2))
        result[node_id] = lines
    return result


def _widths(rows: dict[str, list[str]], count: int) -> list[int]:
    return [max((len(row[i]) for row in rows.values()), default=0) for i in range(count)]


def _aligned(rows: dict[str, list[str]], widths: list[int] | None = None) -> dict[str, str]:
    """Rows of cells as lines whose columns line up (trailing space removed)."""
    count = max((len(row) for row in rows.values()), default=0)
    widths = widths if widths is not None else _widths(rows, count)
    return {
        node_id: ("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False))).rstrip()
        for node_id, row in rows.items()
    }


def _wrapped(line: str, limit: float, indent: int) -> list[str]:
    """``line`` as it is when it fits in ``limit``, else wrapped at spaces (or, for a
    word longer than a line, inside it) with its later lines indented by ``indent``."""
    if len(line) <= limit:
        return [line]
    width = int(limit)
    indent = indent if width - indent >= 20 else min(4, width // 4)
    text = line.lstrip(" ")
    lead = " " * (len(line) - len(text))
    return textwrap.wrap(text, width, initial_indent=lead, subsequent_indent=" " * indent,
                         break_on_hyphens=False)  # fmt: skip


# --- mermaid ----------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    """Escape text for a double-quoted Mermaid label (``#`` first: it starts entities)."""
    for raw, entity in (
        ("#", "#35;"),
        ('"', "#quot;"),
        ("&", "#amp;"),
        ("<", "#lt;"),
        (">", "#gt;"),
    ):
        text = text.replace(raw, entity)
    return _one_line(text)


def _mermaid_ids(order: list[str]) -> dict[str, str]:
    """Node ids as Mermaid ids: unchanged unless Mermaid reads them as a keyword."""
    taken = set(order)
    ids = {}
    for node_id in order:
        alias = node_id
        while alias.lower() in _MERMAID_RESERVED or (alias != node_id and alias in taken):
            alias += "_"
        taken.add(alias)
        ids[node_id] = alias
    return ids


def render_mermaid(spec: WorkflowSpec) -> str:
    """A Mermaid flowchart: ``[[...]]`` for maps, ``{{...}}`` for conditional tasks."""
    graph = DependencyGraph.from_spec(spec)
    ids = _mermaid_ids(graph.order)
    lines = ["flowchart TD", f"    %% {spec.name} version {spec.version[:12]}"]
    maps, conditional = [], []
    for node in _nodes(spec, graph):
        parts = [node.id, f"{node.kind} {node_summary(node)}"]
        if isinstance(node, MapNode):
            parts.append(f"over {node.items} as {node.item_arg}")
            maps.append(ids[node.id])
        if node.when is not None:
            conditional.append(ids[node.id])
        parts.extend(_extras(node))
        label = "<br/>".join(_mermaid_text(part) for part in parts)
        if isinstance(node, MapNode):
            shape = f'[["{label}"]]'
        elif node.when is not None:
            shape = f'{{{{"{label}"}}}}'
        else:
            shape = f'["{label}"]'
        lines.append(f"    {ids[node.id]}{shape}")
    for child in graph.order:
        lines.extend(f"    {ids[parent]} --> {ids[child]}" for parent in graph.parents[child])
    lines.append("    classDef conditional stroke-dasharray: 5 5")
    lines.append("    classDef mapNode stroke-width: 3px")
    if conditional:
        lines.append(f"    class {','.join(conditional)} conditional")
    if maps:
        lines.append(f"    class {','.join(maps)} mapNode")
    return "\n".join(lines) + "\n"


# --- dot --------------------------------------------------------------------------------


def _dot_string(text: str) -> str:
    """A DOT double-quoted string; newlines become ``\\n`` line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\n").replace("\n", "\\n") + '"'


def render_dot(spec: WorkflowSpec) -> str:
    """A Graphviz digraph: ``box3d`` for maps, dashed outline for conditional nodes."""
    graph = DependencyGraph.from_spec(spec)
    lines = [
        f"digraph {_dot_string(spec.name)} {{",
        "  rankdir=TB;",
        f"  label={_dot_string(f'{spec.name} version {spec.version[:12]}')};",
        "  labelloc=t;",
        '  node [shape=box, fontname="Helvetica"];',
    ]
    for node in _nodes(spec, graph):
        parts = [node.id, f"{node.kind} {node_summary(node)}"]
        attributes = []
        if isinstance(node, MapNode):
            parts.append(f"over {node.items} as {node.item_arg}")
            attributes.append("shape=box3d")
        if node.when is not None:
            attributes.append("style=dashed")
        parts.extend(_extras(node))
        attributes.insert(0, f"label={_dot_string(chr(10).join(parts))}")
        lines.append(f"  {_dot_string(node.id)} [{', '.join(attributes)}];")
    for child in graph.order:
        lines.extend(
            f"  {_dot_string(parent)} -> {_dot_string(child)};" for parent in graph.parents[child]
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- json -------------------------------------------------------------------------------


def render_json(spec: WorkflowSpec) -> str:
    """Nodes, edges (``[parent, child]``) and outputs as indented, key-sorted JSON."""
    graph = DependencyGraph.from_spec(spec)
    nodes: list[dict[str, Any]] = []
    for node in _nodes(spec, graph):
        entry: dict[str, Any] = {
            "id": node.id,
            "kind": node.kind,
            "task": node.task if isinstance(node, CallNode) else None,
            "when": node.when,
            "join": node.join.value,
            "parents": list(graph.parents[node.id]),
        }
        if isinstance(node, MapNode):
            entry["items"] = node.items
            entry["item_arg"] = node.item_arg
        if not isinstance(node, CallNode):
            entry["waits_for"] = node_summary(node)
        if isinstance(node, StepNode):  # keel's own task: what it calls says more
            entry["calls"] = node_summary(node)
        nodes.append(entry)
    edges = [[parent, child] for child in graph.order for parent in graph.parents[child]]
    data = {
        "name": spec.name,
        "version": spec.version,
        "nodes": nodes,
        "edges": edges,
        "outputs": dict(spec.outputs),
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

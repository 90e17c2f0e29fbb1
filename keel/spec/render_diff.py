"""The graph of two versions at once, with what changed marked: Mermaid or Graphviz DOT.

The union of both graphs (``keel.spec.diff``): an added node or edge is green, a removed
one red and dashed, a changed node yellow with the fields that changed in its label;
the rest as ``keel.spec.render`` draws them. Pure and deterministic, like ``render``.
"""

from __future__ import annotations

from collections.abc import Callable

from keel.spec.diff import NodeDiff, SpecDiff

# the escaping and ids of ``render`` (one place says what Mermaid and DOT need)
from keel.spec.render import _dot_string, _mermaid_ids, _mermaid_text

GRAPH_FORMATS = ("mermaid", "dot")

#: Mermaid class and DOT attributes per state (colours readable on light and dark)
_MERMAID_CLASSES = {
    "added": "fill:#d8f5d0,stroke:#2f8a1f,color:#123d0b",
    "removed": "fill:#fbdada,stroke:#c62828,stroke-dasharray:5 5,color:#5c0f0f",
    "changed": "fill:#fff3bf,stroke:#b88a00,color:#4d3a00",
}
_DOT_NODES = {
    "added": 'style=filled, fillcolor="#d8f5d0", color="#2f8a1f"',
    "removed": 'style="filled,dashed", fillcolor="#fbdada", color="#c62828"',
    "changed": 'style=filled, fillcolor="#fff3bf", color="#b88a00"',
}
_DOT_EDGES = {"added": 'color="#2f8a1f"', "removed": 'color="#c62828", style=dashed'}
_EDGE_COLOURS = {"added": "#2f8a1f", "removed": "#c62828"}


def render_diff(diff: SpecDiff, fmt: str) -> str:
    """``diff``'s union graph in one of ``GRAPH_FORMATS``."""
    renderers: dict[str, Callable[[SpecDiff], str]] = {"mermaid": diff_mermaid, "dot": diff_dot}
    try:
        return renderers[fmt](diff)
    except KeyError:
        raise ValueError(
            f"unknown graph format {fmt!r}: use {' or '.join(GRAPH_FORMATS)}"
        ) from None


def _label(node: NodeDiff) -> list[str]:
    parts = [node.id, f"{node.kind} {node.summary}"]
    if node.state == "changed":
        parts.append("changed: " + ", ".join(node.fields))
    elif node.state != "same":
        parts.append(node.state)
    return parts


def _title(diff: SpecDiff) -> str:
    a, b = diff.a, diff.b
    first = a.version[:12] if a.workflow == b.workflow else f"{a.workflow} {a.version[:12]}"
    return f"{b.workflow} {first} -> {b.version[:12]}"


def diff_mermaid(diff: SpecDiff) -> str:
    """A Mermaid flowchart: classes ``added``, ``removed`` and ``changed`` on nodes,
    ``linkStyle`` on added and removed edges (removed ones dotted)."""
    ids = _mermaid_ids([node.id for node in diff.nodes])
    lines = ["flowchart TD", f"    %% {_title(diff)}"]
    marked: dict[str, list[str]] = {}
    for node in diff.nodes:
        label = "<br/>".join(_mermaid_text(part) for part in _label(node))
        lines.append(f'    {ids[node.id]}["{label}"]')
        if node.state != "same":
            marked.setdefault(node.state, []).append(ids[node.id])
    styled: dict[str, list[str]] = {}
    for number, edge in enumerate(diff.edges):
        arrow = "-.->" if edge.state == "removed" else "-->"
        lines.append(f"    {ids[edge.parent]} {arrow} {ids[edge.child]}")
        if edge.state != "same":
            styled.setdefault(edge.state, []).append(str(number))
    for state, style in _MERMAID_CLASSES.items():
        lines.append(f"    classDef {state} {style}")
        if state in marked:
            lines.append(f"    class {','.join(marked[state])} {state}")
    for state, numbers in styled.items():
        lines.append(f"    linkStyle {','.join(numbers)} stroke:{_EDGE_COLOURS[state]},"
                     "stroke-width:2px")  # fmt: skip
    return "\n".join(lines) + "\n"


def diff_dot(diff: SpecDiff) -> str:
    """A Graphviz digraph with added, removed and changed nodes and edges coloured."""
    lines = [
        f"digraph {_dot_string(diff.b.workflow)} {{",
        "  rankdir=TB;",
        f"  label={_dot_string(_title(diff))};",
        "  labelloc=t;",
        '  node [shape=box, fontname="Helvetica"];',
    ]
    for node in diff.nodes:
        attributes = [f"label={_dot_string(chr(10).join(_label(node)))}"]
        if node.state in _DOT_NODES:
            attributes.append(_DOT_NODES[node.state])
        lines.append(f"  {_dot_string(node.id)} [{', '.join(attributes)}];")
    for edge in diff.edges:
        style = f" [{_DOT_EDGES[edge.state]}]" if edge.state in _DOT_EDGES else ""
        lines.append(f"  {_dot_string(edge.parent)} -> {_dot_string(edge.child)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"

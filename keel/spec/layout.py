"""Where each node of a workflow's graph is drawn: a layered layout, once per version.

The dashboard draws a workflow with cytoscape.js and a *preset* layout whose positions
come from here: laying a graph out in the browser (dagre) takes minutes for a thousand
nodes, while a workflow's graph never changes within a version, so it is laid out once
on the server and kept (``layout_of``). A map node is one node: its fan-out happens at
run time and is no part of the graph.

The layout is layered (Sugiyama-style), top to bottom:

1. layers: a node's layer is its longest distance from a root, so every edge points down
   and parents are drawn above their children;
2. order: nodes start in spec order within their layer, then are sorted by the mean
   position of their neighbours (barycenter), sweeping down (by parents) and up (by
   children) a few times; the order with the fewest crossings seen is kept, so the
   result never has more than spec order had;
3. x: each layer is centred, then its nodes are pulled towards the mean x of their
   neighbours (down, up, down) as far as their order and the gaps between them allow
   (isotonic regression: exact, and linear in the layer's size).

Long edges get no dummy nodes, whose number grows with the square of the nodes (a
5,000-step chain whose every step also reads the first would need 12 million): they are
drawn straight and may pass beside nodes of the layers they cross, and barycenters take
every neighbour, whatever its layer. Crossings are counted only between edges joining
the same two layers, by sorting. So the work is a few passes over nodes and edges and
their sorts: 5,000 nodes take a fifth of a second (``python -m bench.layout``).

Invariants: pure (no I/O) and deterministic: the same spec gives the same positions.
Coordinates are integers, node centres as cytoscape wants them, the drawing's top-left
corner at (0, 0); nodes of a layer never overlap. Edges are the ``DependencyGraph``'s,
each with the reason it exists, so the picture cannot disagree with what runs.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right, insort
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from keel.spec.graph import (
    DependencyGraph,
    expression_references,
    handled_by,
    node_expressions,
    timeout_route,
)
from keel.spec.model import AnyNode, FailureHandler, JoinRule, WorkflowSpec
from keel.spec.render import node_summary

__all__ = [
    "NEIGHBOURHOOD_ABOVE",
    "SWEEPS",
    "EdgeKind",
    "GraphLayout",
    "LayoutCache",
    "LayoutEdge",
    "PlacedNode",
    "crossings",
    "layout",
    "layout_of",
    "neighbourhood",
]

#: why an edge exists: the child reads the parent's output (``data``), lists it in
#: ``after`` (``order``), handles its failure (``failure``) or its approval's timeout
#: (``timeout``)
EdgeKind = Literal["data", "order", "failure", "timeout"]

#: above this many nodes the page first draws a node's neighbourhood, and asks before
#: drawing everything
NEIGHBOURHOOD_ABOVE = 500

NODE_HEIGHT = 40
#: a node is as wide as its label (about 8 px a character at the dashboard's font, plus
#: padding), within these bounds: a longer label is cut short by the page
MIN_WIDTH, MAX_WIDTH, CHAR_WIDTH, PADDING = 64, 240, 8, 24
#: between two nodes of a layer, and between layers (room for the edges' arrows)
GAP, LAYER_GAP = 24, 64
#: barycenter sweeps (down, up, down, ...): more rarely helps, and each costs O(E log E)
SWEEPS = 6


@dataclass(frozen=True)
class PlacedNode:
    """A node where it is drawn: ``x``, ``y`` its centre; ``w``, ``h`` its box."""

    id: str
    label: str
    #: the spec's node kind: task, map, approval, timer, signal or subworkflow
    kind: str
    x: int
    y: int
    w: int
    h: int
    layer: int
    #: what it does, in a few words (the task it calls, what it waits for)
    detail: str = ""
    #: its condition, when it has one (a branch)
    when: str | None = None
    #: its join rule, when not the default one
    join: str | None = None


@dataclass(frozen=True)
class LayoutEdge:
    source: str
    target: str
    kind: EdgeKind


@dataclass(frozen=True)
class GraphLayout:
    """A laid-out graph: nodes in spec order, edges in ``DependencyGraph`` order, and
    the size of the drawing. ``focus`` is the node a ``neighbourhood`` was taken around."""

    nodes: tuple[PlacedNode, ...]
    edges: tuple[LayoutEdge, ...]
    width: int
    height: int
    focus: str | None = None

    @cached_property
    def node_map(self) -> dict[str, PlacedNode]:
        return {node.id: node for node in self.nodes}

    def to_cytoscape(self) -> list[dict[str, Any]]:
        """cytoscape.js elements for a ``preset`` layout: nodes with ``data`` and
        ``position``, then edges (their id ``source->target``, which no node id can be).
        Fields that do not apply are left out, never null."""
        elements: list[dict[str, Any]] = []
        for node in self.nodes:
            data: dict[str, Any] = {"id": node.id, "label": node.label, "kind": node.kind,
                                    "layer": node.layer, "w": node.w, "h": node.h}  # fmt: skip
            if node.detail:
                data["detail"] = node.detail
            if node.when is not None:
                data["when"] = node.when
            if node.join is not None:
                data["join"] = node.join
            if node.id == self.focus:
                data["focus"] = True
            elements.append({"data": data, "position": {"x": node.x, "y": node.y}})
        for edge in self.edges:
            elements.append({"data": {"id": f"{edge.source}->{edge.target}", "source": edge.source,
                                      "target": edge.target, "kind": edge.kind}})  # fmt: skip
        return elements


@dataclass(frozen=True)
class _Item:
    """A node before it is placed: what it shows."""

    id: str
    label: str
    kind: str
    detail: str = ""
    when: str | None = None
    join: str | None = None


class _CycleError(ValueError):
    pass


# --- from a spec ------------------------------------------------------------------------


def layout(spec: WorkflowSpec, *, sweeps: int = SWEEPS) -> GraphLayout:
    """Lay ``spec``'s graph out (``sweeps=0``: in spec order within each layer). Raises
    ValueError, naming the cycle, if it has one (validation refuses such a spec, so only
    an unvalidated one can)."""
    references = {index: expression_references(node_expressions(node, index))
                  for index, node in enumerate(spec.nodes)}  # fmt: skip
    graph = DependencyGraph.from_spec(spec, references=references, handled=handled_by(spec))
    first: dict[str, AnyNode] = {}
    reads: dict[str, set[str]] = {}
    for index, node in enumerate(spec.nodes):
        if node.id not in first:  # a duplicate id: the graph takes the first
            first[node.id] = node
            reads[node.id] = set(references[index])
    items = [_item(first[node_id]) for node_id in graph.order]
    edges = [
        LayoutEdge(parent, child, _edge_kind(first[parent], child, reads[child]))
        for child in graph.order
        for parent in graph.parents[child]
    ]
    try:
        return _place(items, edges, sweeps=sweeps)
    except _CycleError:
        cycle = " -> ".join(graph.find_cycle() or [])
        raise ValueError(
            f"cannot lay out workflow '{spec.name}': its nodes form a cycle ({cycle}); "
            "remove one of these dependencies"
        ) from None


def _item(node: AnyNode) -> _Item:
    join = None if node.join is JoinRule.NONE_FAILED else node.join.value
    return _Item(node.id, node.id, node.kind, node_summary(node), node.when, join)


def _edge_kind(parent: AnyNode, child: str, reads: set[str]) -> EdgeKind:
    """Why ``child`` depends on ``parent``; when for several reasons, the first of
    failure, timeout, data, order (a handler is a handler, whatever it reads)."""
    if isinstance(parent.on_failure, FailureHandler) and parent.on_failure.handler == child:
        return "failure"
    if timeout_route(parent) == child:
        return "timeout"
    return "data" if parent.id in reads else "order"


# --- a node's neighbourhood -------------------------------------------------------------


def neighbourhood(graph: GraphLayout, focus: str, depth: int = 2) -> GraphLayout:
    """``focus`` with its ancestors and descendants up to ``depth`` edges away, laid out
    anew (a big graph's page draws this first). Edges between the nodes kept stay."""
    if focus not in graph.node_map:
        raise KeyError(f"the graph has no node '{focus}'")
    parents: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for edge in graph.edges:
        parents.setdefault(edge.target, []).append(edge.source)
        children.setdefault(edge.source, []).append(edge.target)
    kept = {focus}
    for links in (parents, children):
        frontier = [focus]
        for _ in range(depth):
            reached = (n for node in frontier for n in links.get(node, ()) if n not in kept)
            frontier = list(dict.fromkeys(reached))
            kept.update(frontier)
    items = [_Item(n.id, n.label, n.kind, n.detail, n.when, n.join)
             for n in graph.nodes if n.id in kept]  # fmt: skip
    edges = [edge for edge in graph.edges if edge.source in kept and edge.target in kept]
    return _place(items, edges, focus=focus)


def crossings(graph: GraphLayout) -> int:
    """How many pairs of edges joining the same two layers cross in ``graph``: what the
    ordering lessens (edges between different pairs of layers are not compared)."""
    index = {node.id: i for i, node in enumerate(graph.nodes)}
    pos = [float(node.x) for node in graph.nodes]
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for edge in graph.edges:
        upper, lower = graph.node_map[edge.source], graph.node_map[edge.target]
        groups.setdefault((upper.layer, lower.layer), []).append(
            (index[edge.source], index[edge.target])
        )
    return _crossings(list(groups.values()), pos)


# --- the cache --------------------------------------------------------------------------


class LayoutCache:
    """The layouts of the last ``size`` spec versions used: a version never changes, so
    neither does its layout. Safe to share between threads."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._layouts: OrderedDict[str, GraphLayout] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: WorkflowSpec) -> GraphLayout:
        key = spec.version
        with self._lock:
            found = self._layouts.get(key)
            if found is not None:
                self._layouts.move_to_end(key)
                return found
        made = layout(spec)  # outside the lock: a big one takes a while
        with self._lock:
            self._layouts[key] = made
            self._layouts.move_to_end(key)
            while len(self._layouts) > self.size:
                self._layouts.popitem(last=False)
        return made

    def __len__(self) -> int:
        return len(self._layouts)


_CACHE = LayoutCache()


def layout_of(spec: WorkflowSpec) -> GraphLayout:
    """``layout(spec)``, kept for the last versions laid out in this process."""
    return _CACHE.get(spec)


# --- placing ----------------------------------------------------------------------------


def _place(items: Sequence[_Item], edges: Sequence[LayoutEdge], *, focus: str | None = None,
           sweeps: int = SWEEPS) -> GraphLayout:  # fmt: skip
    """Lay out nodes (in the order to start from) and edges, as the module says."""
    index = {item.id: i for i, item in enumerate(items)}
    parents: list[list[int]] = [[] for _ in items]
    children: list[list[int]] = [[] for _ in items]
    for edge in edges:
        source, target = index[edge.source], index[edge.target]
        parents[target].append(source)
        children[source].append(target)
    layer_of = _layers(parents, children)
    layers: list[list[int]] = [[] for _ in range(max(layer_of, default=-1) + 1)]
    for node, layer in enumerate(layer_of):
        layers[layer].append(node)
    _order(layers, parents, children, layer_of, sweeps)
    widths = [_width(item.label) for item in items]
    xs = _xs(layers, parents, children, widths)
    placed = tuple(
        PlacedNode(item.id, item.label, item.kind, xs[i],
                   layer_of[i] * (NODE_HEIGHT + LAYER_GAP) + NODE_HEIGHT // 2,
                   widths[i], NODE_HEIGHT, layer_of[i], item.detail, item.when, item.join)
        for i, item in enumerate(items)
    )  # fmt: skip
    width = max((xs[i] + widths[i] // 2 for i in range(len(items))), default=0)
    height = len(layers) * (NODE_HEIGHT + LAYER_GAP) - LAYER_GAP if layers else 0
    return GraphLayout(placed, tuple(edges), width, height, focus)


def _width(label: str) -> int:
    """Even, so that a centre is a whole pixel."""
    width = min(max(len(label) * CHAR_WIDTH + PADDING, MIN_WIDTH), MAX_WIDTH)
    return width + width % 2


def _layers(parents: list[list[int]], children: list[list[int]]) -> list[int]:
    """Each node's longest distance from a root (Kahn's order)."""
    waiting = [len(p) for p in parents]
    queue = deque(node for node, count in enumerate(waiting) if count == 0)
    layer = [0] * len(parents)
    done = 0
    while queue:
        node = queue.popleft()
        done += 1
        for child in children[node]:
            layer[child] = max(layer[child], layer[node] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                queue.append(child)
    if done != len(parents):
        raise _CycleError("the graph has a cycle")
    return layer


def _centred(layer: list[int], pos: list[float]) -> None:
    """Positions by rank, centred on 0, so layers of any size line up by their middle."""
    middle = (len(layer) - 1) / 2
    for rank, node in enumerate(layer):
        pos[node] = rank - middle


def _order(layers: list[list[int]], parents: list[list[int]], children: list[list[int]],
           layer_of: list[int], sweeps: int) -> None:  # fmt: skip
    """Reorder ``layers`` in place by barycenter sweeps, keeping the best order seen."""
    pos = [0.0] * len(layer_of)
    for layer in layers:
        _centred(layer, pos)
    groups = _edge_groups(layers, children, layer_of)
    best, fewest = [list(layer) for layer in layers], _crossings(groups, pos)
    for sweep in range(sweeps):
        if fewest == 0:
            break
        down = sweep % 2 == 0
        links = parents if down else children
        sequence = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
        for number in sequence:
            layer = layers[number]
            keys = {}
            for node in layer:
                around = links[node]
                centre = sum(pos[n] for n in around) / len(around) if around else pos[node]
                keys[node] = (centre, pos[node])
            layer.sort(key=keys.__getitem__)
            _centred(layer, pos)
        count = _crossings(groups, pos)
        if count < fewest:
            best, fewest = [list(layer) for layer in layers], count
    layers[:] = best


def _edge_groups(layers: list[list[int]], children: list[list[int]], layer_of: list[int]
                 ) -> list[list[tuple[int, int]]]:  # fmt: skip
    """The edges by the two layers they join, where there are two or more (only edges
    of one group are counted as crossing: it takes a sort, not a sweep of the plane)."""
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for number, layer in enumerate(layers):
        for node in layer:
            for child in children[node]:
                groups.setdefault((number, layer_of[child]), []).append((node, child))
    return [edges for edges in groups.values() if len(edges) > 1]


def _crossings(groups: list[list[tuple[int, int]]], pos: Sequence[float]) -> int:
    """How many pairs of edges of a group cross: those whose ends are in opposite
    orders (sorted by the upper end, count the lower ends passed)."""
    total = 0
    for edges in groups:
        below: list[float] = []
        for _, lower in sorted([(pos[upper], pos[lower]) for upper, lower in edges]):
            total += len(below) - bisect_right(below, lower)
            insort(below, lower)
    return total


def _xs(layers: list[list[int]], parents: list[list[int]], children: list[list[int]],
        widths: list[int]) -> list[int]:  # fmt: skip
    """Centre x of every node: layers centred, then nodes pulled towards their
    neighbours (down by parents, up by children, down again); left edge at 0."""
    x = [0] * len(widths)
    spans = [sum(widths[n] for n in layer) + GAP * (len(layer) - 1) for layer in layers]
    widest = max(spans, default=0)
    for layer, span in zip(layers, spans, strict=True):
        left = (widest - span) // 2
        for node in layer:
            x[node] = left + widths[node] // 2
            left += widths[node] + GAP
    for links, sequence in ((parents, range(1, len(layers))),
                            (children, range(len(layers) - 2, -1, -1)),
                            (parents, range(1, len(layers)))):  # fmt: skip
        for number in sequence:
            layer = layers[number]
            wanted = [sum(x[n] for n in links[node]) / len(links[node]) if links[node]
                      else float(x[node]) for node in layer]  # fmt: skip
            _fit(layer, wanted, widths, x)
    left = min((x[n] - widths[n] // 2 for n in range(len(x))), default=0)
    return [value - left for value in x]


def _fit(layer: list[int], wanted: list[float], widths: list[int], x: list[int]) -> None:
    """Put the nodes of ``layer`` as near ``wanted`` as they can be (least squares)
    while keeping their order and a ``GAP`` between them.

    With ``offset[k]`` the least distance from the first node's centre to the k-th's,
    ``x[k] = y[k] + offset[k]`` keeps the gaps exactly when the ``y`` do not decrease:
    the nearest such ``y`` is the isotonic regression of ``wanted - offset``, which pool
    adjacent violators finds in one pass. Rounding ``y`` keeps it non-decreasing, so the
    gaps hold in whole pixels too."""
    offsets = [0] * len(layer)
    for k in range(1, len(layer)):
        offsets[k] = offsets[k - 1] + (widths[layer[k - 1]] + widths[layer[k]]) // 2 + GAP
    blocks: list[list[float]] = []  # [sum, count] of pooled values
    for value, offset in zip(wanted, offsets, strict=True):
        blocks.append([value - offset, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    k = 0
    for total, count in blocks:
        y = math.floor(total / count + 0.5)
        for _ in range(int(count)):
            x[layer[k]] = y + offsets[k]
            k += 1

"""The dashboard's graph layout (``keel.spec.layout``): every node placed once, nodes of
a layer apart, edges pointing down with the reason they exist, fewer crossings than spec
order, a node's neighbourhood, cytoscape elements without nulls, one layout per version.

Expected values come from the generators and hand-made specs here (their edges as
written), not from keel's own graph code; crossings are counted geometrically.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.authoring.loading import load_workflow
from keel.spec.layout import (
    GAP,
    MAX_WIDTH,
    MIN_WIDTH,
    GraphLayout,
    LayoutCache,
    LayoutEdge,
    crossings,
    layout,
    layout_of,
    neighbourhood,
)
from keel.spec.model import WorkflowSpec
from keel.spec.validate import parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _spec(nodes: list[dict[str, Any]], name: str = "w") -> WorkflowSpec:
    return parse_spec({"name": name, "nodes": nodes})


def _task(node_id: str, reads: tuple[str, ...] = (), **more: Any) -> dict[str, Any]:
    args = {f"a{k}": f"${{{{ nodes.{parent}.output }}}}" for k, parent in enumerate(reads)}
    return {"id": node_id, "task": "m:f", "args": args, **more}


def _random_dag(size: int, edges: int, seed: int) -> tuple[WorkflowSpec, set[tuple[str, str]]]:
    """A spec of ``size`` nodes and the edges it was built with (half read a parent's
    output, half wait for it with ``after``), in a shuffled spec order."""
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < min(edges, size * (size - 1) // 2):
        a, b = rng.sample(range(size), 2)
        pairs.add((min(a, b), max(a, b)))
    reads: dict[int, list[str]] = defaultdict(list)
    after: dict[int, list[str]] = defaultdict(list)
    for number, (parent, child) in enumerate(sorted(pairs)):
        (reads if number % 2 else after)[child].append(f"n{parent}")
    nodes = [_task(f"n{i}", tuple(reads[i]), after=after[i]) for i in range(size)]
    rng.shuffle(nodes)
    return _spec(nodes), {(f"n{a}", f"n{b}") for a, b in pairs}


def _examples() -> list[WorkflowSpec]:
    return [load_workflow(str(EXAMPLES / name)).spec
            for name in ("claims.py", "document_intake.py", "onboarding.yaml")]  # fmt: skip


def check_sound(spec: WorkflowSpec, laid: GraphLayout) -> None:
    """What every layout must be: each node once, layers apart and not overlapping,
    edges down, each node one layer below its deepest parent, all in the drawing."""
    ids = [node.id for node in laid.nodes]
    assert sorted(ids) == sorted(node.id for node in spec.nodes)
    assert len(set(ids)) == len(ids)
    by_id = laid.node_map
    for edge in laid.edges:
        parent, child = by_id[edge.source], by_id[edge.target]
        assert parent.layer < child.layer, edge
        assert parent.y < child.y, edge
    parents: dict[str, list[str]] = defaultdict(list)
    for edge in laid.edges:
        parents[edge.target].append(edge.source)
    for node in laid.nodes:
        deepest = max((by_id[p].layer for p in parents[node.id]), default=-1)
        assert node.layer == deepest + 1, node.id  # longest path from a root
    layers: dict[int, list[Any]] = defaultdict(list)
    for node in laid.nodes:
        layers[node.layer].append(node)
        assert node.x - node.w // 2 >= 0
        assert node.x + node.w // 2 <= laid.width
        assert node.y - node.h // 2 >= 0
        assert node.y + node.h // 2 <= laid.height
    for members in layers.values():
        assert len({node.y for node in members}) == 1
        members.sort(key=lambda node: node.x)
        for left, right in itertools.pairwise(members):
            assert left.x + left.w // 2 + GAP <= right.x - right.w // 2, (left.id, right.id)
    if laid.nodes:
        assert min(node.x - node.w // 2 for node in laid.nodes) == 0


def geometric_crossings(laid: GraphLayout) -> int:
    """Pairs of edges (no shared end) whose straight segments cross, counted by brute force."""
    by_id = laid.node_map
    segments = [(edge, by_id[edge.source], by_id[edge.target]) for edge in laid.edges]

    def side(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> float:
        return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)

    count = 0
    for (e1, a, b), (e2, c, d) in itertools.combinations(segments, 2):
        if {e1.source, e1.target} & {e2.source, e2.target}:
            continue
        d1, d2 = side(a.x, a.y, b.x, b.y, c.x, c.y), side(a.x, a.y, b.x, b.y, d.x, d.y)
        d3, d4 = side(c.x, c.y, d.x, d.y, a.x, a.y), side(c.x, c.y, d.x, d.y, b.x, b.y)
        count += d1 * d2 < 0 and d3 * d4 < 0
    return count


# --- soundness --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", _examples(), ids=lambda spec: spec.name)
def test_the_examples_are_laid_out_soundly(spec: WorkflowSpec) -> None:
    laid = layout(spec)
    check_sound(spec, laid)
    assert {(e.source, e.target) for e in laid.edges} == {
        (parent, node.id) for node in spec.nodes for parent in _parents_of(spec, node.id)
    }


def _parents_of(spec: WorkflowSpec, node_id: str) -> set[str]:
    """The examples' edges, as their authors wrote them."""
    known = {
        "claim": {"fraud_score": {"extract"}, "escalate": {"fraud_score"},
                  "decide": {"extract", "fraud_score", "coverage"}},
        "document_intake": {"extract_fields": {"load"}, "check_fields": {"extract_fields"},
                            "review": {"check_fields"}, "index": {"extract_fields", "review"}},
        "onboarding": {"setup_account": {"verify_email"}, "personalise": {"setup_account"},
                       "welcome": {"setup_account"}},
    }  # fmt: skip
    return known[spec.name].get(node_id, set())


def test_an_example_shows_kinds_conditions_and_why_each_edge_exists() -> None:
    spec = load_workflow(str(EXAMPLES / "document_intake.py")).spec
    laid = layout(spec)
    review = laid.node_map["review"]
    assert review.kind == "approval"
    assert review.when is not None
    assert "check_fields" in review.when
    assert laid.node_map["load"].when is None
    kinds = {(e.source, e.target): e.kind for e in laid.edges}
    assert kinds[("review", "index")] == "order"  # after=[reviewed]
    assert kinds[("extract_fields", "index")] == "data"
    assert kinds[("check_fields", "review")] == "data"  # its description reads it


def test_a_big_random_dag_is_laid_out_soundly_with_its_own_edges() -> None:
    spec, edges = _random_dag(1_000, 2_000, seed=11)
    laid = layout(spec)
    check_sound(spec, laid)
    assert {(e.source, e.target) for e in laid.edges} == edges


def test_a_wide_fan_and_a_long_chain_are_laid_out_soundly() -> None:
    size = 5_000
    fan = _spec([_task("root"), *(_task(f"n{i}", ("root",)) for i in range(size - 2)),
                 _task("join", after=[f"n{i}" for i in range(size - 2)])])  # fmt: skip
    laid = layout(fan)
    check_sound(fan, laid)
    assert [laid.node_map[n].layer for n in ("root", "n0", f"n{size - 3}", "join")] == [0, 1, 1, 2]
    # the root and the join sit over the middle of the fan
    middle = laid.width // 2
    assert abs(laid.node_map["root"].x - middle) <= MAX_WIDTH
    assert laid.node_map["join"].x == laid.node_map["root"].x

    chain = _spec([_task("n0"), *(_task(f"n{i}", (f"n{i - 1}",)) for i in range(1, 2_000))])
    laid = layout(chain)
    check_sound(chain, laid)
    assert len({node.x for node in laid.nodes}) == 1, "a chain is drawn as a straight line"
    assert laid.height > laid.width


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(0, 80), st.integers(0, 2**32))
def test_any_dag_is_laid_out_soundly_and_ordering_never_adds_crossings(
    size: int, edges: int, seed: int
) -> None:
    spec, _ = _random_dag(size, edges, seed)
    laid = layout(spec)
    check_sound(spec, laid)
    assert crossings(laid) <= crossings(layout(spec, sweeps=0))
    assert layout(spec) == laid


def test_a_diamond_is_symmetric_and_parents_are_centred_over_children() -> None:
    spec = _spec([_task("a"), _task("b", ("a",)), _task("c", ("a",)), _task("d", ("b", "c"))])
    laid = layout(spec)
    nodes = laid.node_map
    assert nodes["a"].x == nodes["d"].x
    assert nodes["b"].x < nodes["a"].x < nodes["c"].x
    assert nodes["a"].x - nodes["b"].x == nodes["c"].x - nodes["a"].x


def test_an_empty_workflow_is_an_empty_drawing() -> None:
    assert layout(_spec([])) == GraphLayout(nodes=(), edges=(), width=0, height=0)
    assert layout(_spec([])).to_cytoscape() == []


def test_node_width_follows_the_label_within_bounds() -> None:
    spec = _spec([_task("a"), _task("a_medium_sized_name"), _task("x" * 200)])
    nodes = layout(spec).node_map
    assert nodes["a"].w == MIN_WIDTH
    assert MIN_WIDTH < nodes["a_medium_sized_name"].w < MAX_WIDTH
    assert nodes["x" * 200].w == MAX_WIDTH
    assert all(node.w % 2 == 0 and node.h > 0 for node in nodes.values())


# --- crossings --------------------------------------------------------------------------


def test_barycenter_ordering_removes_the_crossings_of_spec_order() -> None:
    """a, b, c over z, y, x written as x, y, z: spec order crosses every pair."""
    spec = _spec([_task("a"), _task("b"), _task("c"),
                  _task("x", ("c",)), _task("y", ("b",)), _task("z", ("a",)),
                  _task("end", ("x", "y", "z"))])  # fmt: skip
    as_written = layout(spec, sweeps=0)
    laid = layout(spec)
    assert geometric_crossings(as_written) == crossings(as_written) == 3
    assert geometric_crossings(laid) == crossings(laid) == 0
    check_sound(spec, laid)


def test_ordering_lessens_crossings_of_a_random_dag() -> None:
    spec, _ = _random_dag(60, 90, seed=5)
    as_written, laid = layout(spec, sweeps=0), layout(spec)
    assert crossings(laid) < crossings(as_written)
    assert geometric_crossings(laid) < geometric_crossings(as_written)


# --- kinds of nodes and edges -----------------------------------------------------------

HANDLED = [
    _task("charge", on_failure="refund"),
    {"id": "items", "kind": "map", "task": "m:each", "items": "nodes.charge.output",
     "item_arg": "item"},
    {"id": "ok", "kind": "approval", "title": "OK?", "timeout": "1h", "on_timeout": "chase",
     "after": ["items"]},
    _task("refund"),
    _task("chase"),
    {"id": "pause", "kind": "timer", "duration": "5m", "after": ["ok"]},
    {"id": "paid", "kind": "signal", "signal": "paid", "after": ["pause"]},
    _task("done", ("paid",), when="nodes.paid.output.ok", join="all_done"),
]  # fmt: skip


def test_handler_and_timeout_edges_are_present_with_their_kind() -> None:
    laid = layout(_spec(HANDLED))
    kinds = {(e.source, e.target): e.kind for e in laid.edges}
    assert kinds == {
        ("charge", "refund"): "failure",
        ("charge", "items"): "data",
        ("items", "ok"): "order",
        ("ok", "chase"): "timeout",
        ("ok", "pause"): "order",
        ("pause", "paid"): "order",
        ("paid", "done"): "data",
    }
    check_sound(_spec(HANDLED), laid)


def test_a_handler_that_reads_what_it_handles_is_still_a_failure_edge() -> None:
    spec = _spec([_task("a", on_failure="h"), _task("h", ("a",))])
    assert layout(spec).edges == (LayoutEdge("a", "h", "failure"),)


def test_a_map_node_is_one_node_with_its_kind_and_the_node_kinds_show() -> None:
    laid = layout(_spec(HANDLED))
    assert [node.id for node in laid.nodes].count("items") == 1
    kinds = {node.id: node.kind for node in laid.nodes}
    assert kinds == {"charge": "task", "items": "map", "ok": "approval", "refund": "task",
                     "chase": "task", "pause": "timer", "paid": "signal",
                     "done": "task"}  # fmt: skip
    elements = laid.to_cytoscape()
    assert [e["data"]["id"] for e in elements].count("items") == 1
    assert laid.node_map["items"].detail == "m:each"


def test_a_cycle_is_refused_naming_it() -> None:
    spec = _spec([_task("a", after=["c"]), _task("b", ("a",)), _task("c", ("b",))])
    with pytest.raises(ValueError, match=r"cycle \(a -> b -> c -> a\)"):
        layout(spec)


# --- cytoscape --------------------------------------------------------------------------


def _nulls(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_nulls(v) for v in value.values())
    if isinstance(value, list):
        return any(_nulls(v) for v in value)
    return False


def test_cytoscape_elements_are_compact_and_complete() -> None:
    laid = layout(_spec(HANDLED))
    elements = laid.to_cytoscape()
    assert not _nulls(elements)
    assert json.loads(json.dumps(elements)) == elements
    nodes = [e for e in elements if "position" in e]
    edges = [e for e in elements if "source" in e["data"]]
    assert len(nodes) == len(laid.nodes)
    assert len(edges) == len(laid.edges)
    assert len({e["data"]["id"] for e in elements}) == len(elements)
    done = next(e for e in nodes if e["data"]["id"] == "done")
    placed = laid.node_map["done"]
    assert done["position"] == {"x": placed.x, "y": placed.y}
    assert done["data"]["when"] == "nodes.paid.output.ok"
    assert done["data"]["join"] == "all_done"
    refund = next(e for e in nodes if e["data"]["id"] == "refund")
    assert set(refund["data"]) == {"id", "label", "kind", "layer", "w", "h", "detail"}
    assert {"data": {"id": "ok->chase", "source": "ok", "target": "chase", "kind": "timeout"}
            } in edges  # fmt: skip


# --- neighbourhood ----------------------------------------------------------------------


def test_a_neighbourhood_holds_ancestors_and_descendants_up_to_depth() -> None:
    """r -> a -> b -> f -> c -> d -> e, with a sibling s of f (child of b), an aunt u
    (child of r) and a second parent p of c."""
    spec = _spec([_task("r"), _task("a", ("r",)), _task("u", ("r",)), _task("b", ("a",)),
                  _task("f", ("b",)), _task("s", ("b",)), _task("p"), _task("c", ("f", "p")),
                  _task("d", ("c",)), _task("e", ("d",))])  # fmt: skip
    full = layout(spec)
    near = neighbourhood(full, "f", depth=2)
    assert {node.id for node in near.nodes} == {"a", "b", "f", "c", "d"}
    assert {(e.source, e.target) for e in near.edges} == {
        ("a", "b"), ("b", "f"), ("f", "c"), ("c", "d")}  # fmt: skip
    assert near.focus == "f"
    assert [e["data"].get("focus") for e in near.to_cytoscape() if e["data"]["id"] == "f"] == [True]
    check_sound(_spec([_task("a"), _task("b", ("a",)), _task("f", ("b",)),
                       _task("c", ("f",)), _task("d", ("c",))]), near)  # fmt: skip
    assert {node.id for node in neighbourhood(full, "f", depth=1).nodes} == {"b", "f", "c"}
    assert {node.id for node in neighbourhood(full, "c", depth=1).nodes} == {"f", "p", "c", "d"}
    assert {node.id for node in neighbourhood(full, "f", depth=0).nodes} == {"f"}
    everything = neighbourhood(full, "f", depth=10)
    # ancestors and descendants only: not the sibling s, the aunt u, nor c's other parent p
    assert {node.id for node in everything.nodes} == {"r", "a", "b", "f", "c", "d", "e"}
    with pytest.raises(KeyError, match="no node 'ghost'"):
        neighbourhood(full, "ghost")


def test_a_neighbourhood_of_a_big_graph_is_small_and_laid_out_anew() -> None:
    spec, _ = _random_dag(2_000, 3_000, seed=3)
    full = layout(spec)
    focus = full.nodes[len(full.nodes) // 2].id
    near = neighbourhood(full, focus)
    assert 1 < len(near.nodes) < len(full.nodes) // 10
    assert near.node_map[focus].label == full.node_map[focus].label
    assert near.width < full.width
    assert min(node.layer for node in near.nodes) == 0


# --- determinism and the cache ----------------------------------------------------------


def test_the_same_spec_always_gets_the_same_positions() -> None:
    spec, _ = _random_dag(300, 500, seed=8)
    again = parse_spec(json.loads(spec.model_dump_json()))
    assert again is not spec
    assert again.version == spec.version
    assert layout(again) == layout(spec)
    assert layout(again).to_cytoscape() == layout(spec).to_cytoscape()


def test_layouts_are_cached_by_version_least_recently_used_first_out() -> None:
    specs = [_spec([_task("a"), _task(name, ("a",))]) for name in ("b", "c", "d")]
    cache = LayoutCache(size=2)
    first = cache.get(specs[0])
    assert cache.get(parse_spec(json.loads(specs[0].model_dump_json()))) is first
    second = cache.get(specs[1])
    cache.get(specs[0])  # used last: it stays
    cache.get(specs[2])  # evicts specs[1]
    assert len(cache) == 2
    assert cache.get(specs[0]) is first
    again = cache.get(specs[1])  # laid out anew
    assert again is not second
    assert again == second
    assert layout_of(specs[2]) is layout_of(specs[2])
    assert layout_of(specs[2]) == layout(specs[2])

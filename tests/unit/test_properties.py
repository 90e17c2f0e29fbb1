"""Properties of specs over random DAGs: validity, topological order, cycles and versions.

A generated workflow is plain data plus the edges it was built with, so every property is
checked against what the generator meant, not against keel's own graph code.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.spec.canonical import spec_json
from keel.spec.expressions import CEL_RESERVED
from keel.spec.graph import DependencyGraph
from keel.spec.validate import parse_spec, validate

SETTINGS = settings(max_examples=60, deadline=None)
#: a layout of an expression: tokens joined by one space, or by any run of whitespace
Layout = tuple[str, str, str]  # (before, between, after)
SINGLE: Layout = ("", " ", "")

node_ids = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(
    lambda name: name not in CEL_RESERVED
)
whitespace = st.text(alphabet=" \t\n", min_size=1, max_size=3)
layouts = st.tuples(st.text(alphabet=" \t\n", max_size=2), whitespace, st.text(" \n", max_size=2))


@dataclass
class Dag:
    """A random workflow: ids in spec order, edges (parent, child) and expressions as tokens."""

    ids: list[str]
    edges: set[tuple[str, str]] = field(default_factory=set)
    #: node id -> how it depends on each parent ("arg", "after", "when", "items")
    ways: dict[str, dict[str, str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    def data(self, layout: Layout = SINGLE, extra_after: dict[str, str] | None = None) -> Any:
        """The spec's data, every expression written with ``layout``."""

        def write(tokens: list[str]) -> str:
            before, between, after = layout
            return before + between.join(tokens) + after

        nodes = []
        for node_id in self.ids:
            ways = self.ways[node_id]
            node: dict[str, Any] = {"id": node_id, "task": f"pkg.tasks:{node_id}"}
            node["args"] = {
                f"from_{parent}": {"expr": write([f"nodes.{parent}.output", "!=", "null"])}
                for parent, way in ways.items()
                if way == "arg"
            }
            node["args"]["constant"] = {"value": {"text": "a  b", "n": [1, 2.5]}}
            after = [parent for parent, way in ways.items() if way == "after"]
            if extra_after and node_id in extra_after:
                after.append(extra_after[node_id])
            if after:
                node["after"] = after
            conditions = [parent for parent, way in ways.items() if way == "when"]
            if conditions:
                tokens: list[str] = []
                for parent in conditions:
                    tokens += ["&&"] if tokens else []
                    tokens += [f"nodes.{parent}.output", "!=", '"no  thing"']
                node["when"] = write(tokens)
            if self.kinds[node_id] == "map":
                node["kind"] = "map"
                node["item_arg"] = "item"
                sources = [parent for parent, way in ways.items() if way == "items"]
                items = [f"nodes.{sources[0]}.output"] if sources else ["[", "1,", "2", "]"]
                node["items"] = write(items)
            nodes.append(node)
        outputs = {"last": write([f"nodes.{self.ids[-1]}.output"])}
        return {"name": "random", "nodes": nodes, "outputs": outputs}

    def descendants(self, node_id: str) -> set[str]:
        found: set[str] = set()
        frontier = [node_id]
        while frontier:
            current = frontier.pop()
            for parent, child in self.edges:
                if parent == current and child not in found:
                    found.add(child)
                    frontier.append(child)
        return found


@st.composite
def dags(draw: st.DrawFn, min_nodes: int = 1, max_nodes: int = 8) -> Dag:
    ids = draw(st.lists(node_ids, min_size=min_nodes, max_size=max_nodes, unique=True))
    dag = Dag(ids)
    for index, node_id in enumerate(ids):
        dag.kinds[node_id] = draw(st.sampled_from(["task", "task", "map"]))
        ways: dict[str, str] = {}
        choices = ["arg", "after", "when"] + (["items"] if dag.kinds[node_id] == "map" else [])
        for parent in ids[:index]:
            if draw(st.booleans()):
                way = draw(st.sampled_from(choices))
                if way == "items" and "items" in ways.values():
                    way = "arg"  # a map has one list of items
                ways[parent] = way
                dag.edges.add((parent, node_id))
        dag.ways[node_id] = ways
    return dag


def _shuffled(value: Any, rng: random.Random) -> Any:
    """The same data with every mapping's keys in a random order (lists keep theirs)."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: _shuffled(value[key], rng) for key in keys}
    if isinstance(value, list):
        return [_shuffled(item, rng) for item in value]
    return value


# --- valid DAGs -----------------------------------------------------------------------------


@SETTINGS
@given(dags())
def test_random_dags_are_valid(dag: Dag) -> None:
    spec = parse_spec(dag.data())
    assert validate(spec) == []


@SETTINGS
@given(dags())
def test_the_graph_has_exactly_the_generated_edges(dag: Dag) -> None:
    graph = DependencyGraph.from_spec(parse_spec(dag.data()))
    found = {(parent, child) for child, parents in graph.parents.items() for parent in parents}
    assert found == dag.edges
    assert graph.roots() == [node for node in dag.ids if not any(c == node for _, c in dag.edges)]


@SETTINGS
@given(dags())
def test_topological_order_respects_every_edge(dag: Dag) -> None:
    order = DependencyGraph.from_spec(parse_spec(dag.data())).topological_order()
    assert sorted(order) == sorted(dag.ids)
    position = {node: index for index, node in enumerate(order)}
    for parent, child in dag.edges:
        assert position[parent] < position[child], f"{parent} must come before {child}"


@SETTINGS
@given(dags())
def test_depths_grow_along_every_edge(dag: Dag) -> None:
    depths = DependencyGraph.from_spec(parse_spec(dag.data())).depths()
    for parent, child in dag.edges:
        assert depths[parent] < depths[child]


@SETTINGS
@given(st.lists(node_ids, min_size=1, max_size=8, unique=True))
def test_without_edges_the_order_is_the_spec_order(ids: list[str]) -> None:
    data = {"name": "flat", "nodes": [{"id": node, "task": "m:f"} for node in ids]}
    assert DependencyGraph.from_spec(parse_spec(data)).topological_order() == ids


# --- cycles ---------------------------------------------------------------------------------


@SETTINGS
@given(dags(min_nodes=2), st.data())
def test_a_back_edge_is_reported_as_a_real_cycle(dag: Dag, data: st.DataObject) -> None:
    if not dag.edges:  # make sure there is a path to close
        first, second = dag.ids[0], dag.ids[1]
        dag.ways[second][first] = "after"
        dag.edges.add((first, second))
    start = data.draw(st.sampled_from(sorted(n for n in dag.ids if dag.descendants(n))))
    end = data.draw(st.sampled_from(sorted(dag.descendants(start))))
    # ``start`` now also runs after ``end``, which already (indirectly) depends on ``start``
    spec = parse_spec(dag.data(extra_after={start: end}))
    edges = dag.edges | {(end, start)}

    issues = validate(spec)
    assert [issue.code for issue in issues] == ["cycle"]
    prefix = "dependency cycle: "
    assert issues[0].message.startswith(prefix)
    path = issues[0].message.removeprefix(prefix).split(" -> ")
    assert len(path) >= 3
    assert path[0] == path[-1]
    assert len(set(path[:-1])) == len(path) - 1, "a cycle visits each node once"
    for parent, child in itertools.pairwise(path):
        assert (parent, child) in edges, f"{parent} -> {child} is not an edge"
    assert issues[0].node == path[0]
    assert issues[0].loc == ("nodes", dag.ids.index(path[0]))


@SETTINGS
@given(dags(min_nodes=2))
def test_topological_order_refuses_a_cycle(dag: Dag) -> None:
    first, last = dag.ids[0], dag.ids[-1]
    data = dag.data(extra_after={first: last})
    data["nodes"][-1].setdefault("after", []).append(first)
    graph = DependencyGraph.from_spec(parse_spec(data))
    with pytest.raises(ValueError, match="cycle"):
        graph.topological_order()
    assert graph.find_cycle() is not None


# --- versions -------------------------------------------------------------------------------


@SETTINGS
@given(dags(), st.randoms(use_true_random=False))
def test_version_ignores_key_order(dag: Dag, rng: random.Random) -> None:
    data = dag.data()
    shuffled = _shuffled(copy.deepcopy(data), rng)
    assert parse_spec(shuffled).version == parse_spec(data).version


@SETTINGS
@given(dags(), layouts)
def test_version_ignores_whitespace_in_expressions(dag: Dag, layout: Layout) -> None:
    single = parse_spec(dag.data())
    spread = parse_spec(dag.data(layout))
    assert spread.version == single.version
    assert spec_json(spread) == spec_json(single)


@SETTINGS
@given(st.text(alphabet=" \t", min_size=1, max_size=3).filter(lambda run: run != " "))
def test_whitespace_inside_strings_changes_the_version(run: str) -> None:
    # (a raw newline cannot be inside a "..." string: such an expression does not parse)
    def version(literal_text: str) -> str:
        node = {"id": "a", "task": "m:f", "when": f'input.x == "{literal_text}"'}
        return parse_spec({"name": "w", "nodes": [node]}).version

    assert version(f"a{run}b") != version("a b")


@SETTINGS
@given(dags(), layouts)
def test_canonical_json_round_trip_keeps_the_version(dag: Dag, layout: Layout) -> None:
    spec = parse_spec(dag.data(layout))
    text = spec_json(spec)
    again = parse_spec(json.loads(text))
    assert again == spec
    assert spec_json(again) == text
    assert again.version == spec.version

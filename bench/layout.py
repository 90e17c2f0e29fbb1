"""How long laying a workflow's graph out takes (``keel.spec.layout``), for big shapes.

    python -m bench.layout [NODES] [--reps N]

Shapes of NODES nodes (5,000 unless given): a chain whose every step reads the one
before; a fan (one root, the rest side by side, one join after them); a random DAG
with twice as many edges as nodes (half read a parent's output, half wait for it with
``after``). Each is timed, best of ``--reps`` (3): ``layout`` whole and from cold (the
expression parser's cache emptied, as for a version never seen), ``layout`` when the
expressions were parsed before (its cache holds 4,096: for a 5,000-step chain, warm is
cold), ``graph`` (reading the edges from the spec: the
``DependencyGraph``, from cold) alone, and turning the layout into cytoscape JSON; and
the crossings (between edges joining the same two layers) before and after ordering.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from keel.spec.expressions import analyze
from keel.spec.graph import DependencyGraph
from keel.spec.layout import GraphLayout, crossings, layout
from keel.spec.model import WorkflowSpec
from keel.spec.validate import parse_spec


def _node(index: int, reads: Sequence[int] = (), after: Sequence[int] = ()) -> dict[str, Any]:
    node: dict[str, Any] = {"id": f"step_{index}", "task": "bench.tasks:step"}
    if reads:
        node["args"] = {f"a{k}": f"${{{{ nodes.step_{p}.output }}}}" for k, p in enumerate(reads)}
    if after:
        node["after"] = [f"step_{p}" for p in after]
    return node


def chain(size: int) -> WorkflowSpec:
    nodes = [_node(0)] + [_node(i, reads=[i - 1]) for i in range(1, size)]
    return parse_spec({"name": "chain", "nodes": nodes})


def fan(size: int) -> WorkflowSpec:
    middle = range(1, size - 1)
    nodes = [_node(0), *(_node(i, reads=[0]) for i in middle), _node(size - 1, after=[*middle])]
    return parse_spec({"name": "fan", "nodes": nodes})


def random_dag(size: int, seed: int = 7) -> WorkflowSpec:
    """``2 * size`` distinct edges between random pairs, each from the earlier node."""
    rng = random.Random(seed)
    edges: set[tuple[int, int]] = set()
    while len(edges) < 2 * size:
        a, b = rng.sample(range(size), 2)
        edges.add((min(a, b), max(a, b)))
    reads: dict[int, list[int]] = {}
    after: dict[int, list[int]] = {}
    for number, (parent, child) in enumerate(sorted(edges)):
        (reads if number % 2 else after).setdefault(child, []).append(parent)
    nodes = [_node(i, reads.get(i, []), after.get(i, [])) for i in range(size)]
    return parse_spec({"name": "random", "nodes": nodes})


SHAPES: dict[str, Callable[[int], WorkflowSpec]] = {
    "chain": chain, "fan": fan, "random DAG": random_dag,
}  # fmt: skip


def best_ms(action: Callable[[], object], reps: int, *, cold: bool) -> float:
    """The fastest of ``reps`` calls, in ms; ``cold`` empties the expression cache first."""
    times = []
    for _ in range(reps):
        if cold:
            analyze.cache_clear()
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def row(name: str, spec: WorkflowSpec, reps: int) -> str:
    """One shape's Markdown row."""
    spec.version  # noqa: B018 (hashed beforehand, as a stored spec is)
    cold = best_ms(partial(layout, spec), reps, cold=True)
    warm = best_ms(partial(layout, spec), reps, cold=False)
    graph = best_ms(partial(DependencyGraph.from_spec, spec), reps, cold=True)
    laid = layout(spec)
    encoding = best_ms(partial(cytoscape_json, laid), reps, cold=False)
    size_kb = len(cytoscape_json(laid)) / 1024
    layers = max(node.layer for node in laid.nodes) + 1
    before, after = crossings(layout(spec, sweeps=0)), crossings(laid)
    cells = [
        name,
        f"{len(laid.edges):,}",
        f"{layers:,}",
        f"{cold:,.0f}",
        f"{warm:,.0f}",
        f"{graph:,.0f}",
        f"{encoding:,.0f}",
        f"{size_kb:,.0f}",
        f"{before:,} → {after:,}",
    ]
    return f"| {' | '.join(cells)} |"


def cytoscape_json(laid: GraphLayout) -> str:
    return json.dumps(laid.to_cytoscape(), separators=(",", ":"))


def main() -> None:
    args = sys.argv[1:]
    if any(arg in ("-h", "--help") for arg in args):
        print(__doc__)
        return
    reps = 3
    if "--reps" in args:
        at = args.index("--reps")
        reps = int(args[at + 1])
        del args[at : at + 2]
    size = int(args[0]) if args else 5_000
    print(f"| shape ({size:,} nodes) | edges | layers | layout cold ms | layout warm ms "
          "| graph cold ms | cytoscape JSON ms | JSON KB "
          "| crossings, spec order → laid out |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, make in SHAPES.items():
        print(row(name, make(size), reps), flush=True)


if __name__ == "__main__":
    main()

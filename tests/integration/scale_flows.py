"""Large generated workflows for scale tests and measurements: layered random DAGs.

``layered_spec(n, width, seed)`` gives ``n`` nodes in layers of ``width``; each node reads
up to three nodes of the layer before and adds one to their maximum, so the final output
checks that data really flowed through every layer.
"""

from __future__ import annotations

import random
from typing import Any

from keel.spec import WorkflowSpec, parse_spec


def add_one(values: list[int]) -> int:
    return max(values, default=0) + 1


def layered_spec(n: int, width: int = 100, seed: int = 7) -> WorkflowSpec:
    rng = random.Random(seed)
    nodes: list[dict[str, Any]] = []
    previous: list[str] = []
    for index in range(n):
        if index % width == 0 and index:
            previous = [node["id"] for node in nodes[index - width : index]]
        node_id = f"n{index}"
        parents = rng.sample(previous, k=min(len(previous), rng.randint(1, 3))) if previous else []
        reads = ", ".join(f"nodes.{parent}.output" for parent in parents)
        nodes.append({
            "id": node_id,
            "task": "tests.integration.scale_flows:add_one",
            "args": {"values": "${{ [" + reads + "] }}"},
        })  # fmt: skip
    return parse_spec({"name": f"layered-{n}", "nodes": nodes,
                       "outputs": {"last": f"nodes.n{n - 1}.output"}})  # fmt: skip


def expected_last(spec: WorkflowSpec) -> int:
    """The last node's output, computed directly."""
    values: dict[str, int] = {}
    for node in spec.nodes:
        expression = node.args["values"].expr  # type: ignore[union-attr]
        parents = [part.split(".")[1] for part in expression.strip("[]").split(", ") if part]
        values[node.id] = max((values[parent] for parent in parents), default=0) + 1
    return values[spec.nodes[-1].id]


def weigh(values: list[Any]) -> int:
    """Accepts whatever upstream nodes give (ints, lists from maps, null when skipped)."""
    total = 1
    for value in values:
        if isinstance(value, int):
            total += value
        elif isinstance(value, list):
            total += len(value)
    return total

"""Large generated workflows for scale tests: the benchmark suite's layered DAGs."""

from __future__ import annotations

from typing import Any

import keel
from bench.flows import layered as layered_spec
from keel.spec import WorkflowSpec

__all__ = ["expected_last", "layered_spec", "weigh"]


def expected_last(spec: WorkflowSpec) -> int:
    """The last node's output, computed directly."""
    values: dict[str, int] = {}
    for node in spec.nodes:
        expression = node.args["values"].expr  # type: ignore[union-attr]
        parents = [part.split(".")[1] for part in expression.strip("[]").split(", ") if part]
        values[node.id] = max((values[parent] for parent in parents), default=0) + 1
    return values[spec.nodes[-1].id]


@keel.task
def weigh(values: list[Any]) -> int:
    """Accepts whatever upstream nodes give (ints, lists from maps, null when skipped)."""
    total = 1
    for value in values:
        if isinstance(value, int):
            total += value
        elif isinstance(value, list):
            total += len(value)
    return total

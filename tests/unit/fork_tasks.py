"""Tasks of the fork tests: a saga whose car is sold out in Reykjavik, and a count of
every execution of each task in this process (``EXECUTED``), so a test proves what a
fork did not run again."""

from __future__ import annotations

from collections import Counter
from typing import Any

import keel

EXECUTED: Counter[str] = Counter()
TASKS = "tests.unit.fork_tasks"


class SoldOut(keel.NonRetryable):
    """No car left."""


@keel.task
def cancel(output: dict[str, Any]) -> str:
    EXECUTED["cancel"] += 1
    return f"cancelled {output['ref']}"


@keel.task(compensate=cancel)
def book(kind: str, city: str) -> dict[str, Any]:
    EXECUTED[kind] += 1
    if kind == "car" and city == "Reykjavik":
        raise SoldOut(f"no cars left in {city}")
    return {"kind": kind, "ref": f"{kind}-{city}"}


def saga() -> keel.WorkflowSpec:
    """flight, then hotel, then car; each booking undone if a later one fails."""
    from keel.spec import parse_spec

    def booking(kind: str, after: list[str]) -> dict[str, Any]:
        return {"id": kind, "task": f"{TASKS}:book", "compensate": f"{TASKS}:cancel",
                "args": {"kind": kind, "city": "${{ input.city }}"}, "after": after}  # fmt: skip

    return parse_spec({
        "name": "saga",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]},
        "nodes": [booking("flight", []), booking("hotel", ["flight"]), booking("car", ["hotel"])],
        "outputs": {"car": "nodes.car.output", "flight": "nodes.flight.output"},
    })  # fmt: skip

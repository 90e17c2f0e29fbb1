"""The benchmark workflows, built as specs (no tracing cost in the measurement)."""

from __future__ import annotations

from bench import tasks
from keel.spec import WorkflowSpec, parse_spec

#: the module of the tasks these specs name; imported above, as a worker must have it
TASKS = tasks.__name__


def chain(n: int) -> WorkflowSpec:
    """n sequential nodes: node i returns its input + 1."""
    nodes = [{"id": "n0", "task": f"{TASKS}:inc", "args": {"x": "${{ input.start }}"}}]
    nodes += [
        {"id": f"n{i}", "task": f"{TASKS}:inc", "args": {"x": f"${{{{ nodes.n{i - 1}.output }}}}"}}
        for i in range(1, n)
    ]
    return parse_spec({
        "name": f"chain-{n}", "nodes": nodes,
        "input_schema": {"type": "object", "properties": {"start": {"type": "integer"}}},
        "outputs": {"last": f"nodes.n{n - 1}.output"},
    })  # fmt: skip


def fan_out(n: int) -> WorkflowSpec:
    """One node returns n ints, a map doubles each, a join sums them."""
    return parse_spec({
        "name": f"fan-out-{n}",
        "nodes": [
            {"id": "numbers", "task": f"{TASKS}:numbers", "args": {"n": n}},
            {"id": "double", "kind": "map", "task": f"{TASKS}:double",
             "items": "nodes.numbers.output", "item_arg": "x"},
            {"id": "total", "task": f"{TASKS}:total",
             "args": {"values": "${{ nodes.double.output }}"}},
        ],
        "outputs": {"total": "nodes.total.output"},
    })  # fmt: skip


def layered(n: int, width: int = 100, seed: int = 7) -> WorkflowSpec:
    """n nodes in layers of ``width``; each reads up to three nodes of the layer before
    and returns one more than their maximum (so the output checks the data flowed)."""
    import random

    rng = random.Random(seed)
    nodes: list[dict[str, object]] = []
    previous: list[str] = []
    for index in range(n):
        if index % width == 0 and index:
            previous = [f"n{i}" for i in range(index - width, index)]
        parents = rng.sample(previous, k=min(len(previous), rng.randint(1, 3))) if previous else []
        reads = ", ".join(f"nodes.{parent}.output" for parent in parents)
        nodes.append({"id": f"n{index}", "task": f"{TASKS}:add_one",
                      "args": {"values": "${{ [" + reads + "] }}"}})  # fmt: skip
    return parse_spec({"name": f"layered-{n}", "nodes": nodes,
                       "outputs": {"last": f"nodes.n{n - 1}.output"}})  # fmt: skip


def waiting(kind: str) -> WorkflowSpec:
    """A run that begins by waiting (an approval, or a timer of an hour), then one task."""
    wait: dict[str, object] = (
        {"id": "wait", "kind": "approval", "title": "Go ahead?", "assignees": ["ops"]}
        if kind == "approval"
        else {"id": "wait", "kind": "timer", "duration": 3600}
    )
    return parse_spec({
        "name": f"waiting-{kind}",
        "nodes": [wait, {"id": "after", "task": f"{TASKS}:inc", "args": {"x": 1},
                         "after": ["wait"]}],
        "outputs": {"after": "nodes.after.output"},
    })  # fmt: skip

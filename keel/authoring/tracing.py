"""The trace of a workflow function: the nodes its calls create, and the open conditions.

A workflow function is called once, at definition time, with ``Value``s for its inputs.
Every task call inside it lands here and becomes a node; ``keel.when`` pushes a
condition onto every node created inside its block. The trace is per call (a context
variable), never a process-wide registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from keel.authoring.values import Value, expression_of
from keel.errors import SpecIssue, TracingError
from keel.spec.callables import Signature
from keel.spec.registry import SpecRegistry

#: the output name used when a workflow returns a single value: its run's output is
#: ``{"result": value}``
RESULT = "result"


def node_id_of(output: NodeOutput) -> str:
    return str(object.__getattribute__(output, "_node_id"))


class NodeOutput(Value):
    """The output of one node (or a ``field`` of it); it can also be named in
    ``after=[...]``."""

    __slots__ = ("_node_id",)

    def __init__(self, node_id: str, field: str | None = None) -> None:
        super().__init__(f"nodes.{node_id}.output" + (f".{field}" if field else ""))
        object.__setattr__(self, "_node_id", node_id)


@dataclass
class Trace:
    """What one tracing pass of a workflow function has built so far."""

    workflow: str
    nodes: list[dict[str, Any]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    #: the suffix ``unique_id`` tries first for each id used more than once
    next_number: dict[str, int] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)
    signatures: dict[str, Signature] = field(default_factory=dict)
    #: problems found while tracing (bad node options), reported with the spec's own
    issues: list[SpecIssue] = field(default_factory=list)
    #: the definitions of the child workflows called so far (and of theirs)
    registry: SpecRegistry = field(default_factory=SpecRegistry)

    def unique_id(self, wanted: str, *, explicit: bool) -> str:
        if wanted not in self.ids:
            return wanted
        if explicit:
            raise TracingError(f"workflow '{self.workflow}' already has a node with id '{wanted}'")
        number = self.next_number.get(wanted, 2)
        while f"{wanted}_{number}" in self.ids:
            number += 1
        self.next_number[wanted] = number + 1  # a step used n times: not n looks each
        return f"{wanted}_{number}"

    def add(self, node: dict[str, Any], field: str | None = None) -> NodeOutput:
        """Record ``node``; its output (or ``field`` of its output) for what follows."""
        self.ids.add(node["id"])
        self.nodes.append(node)
        return NodeOutput(node["id"], field)

    def condition(self, own: tuple[object, ...]) -> str | None:
        """The ``when`` of a new node: its own conditions and every enclosing keel.when."""
        if not own and not self.conditions:  # most steps: unconditional
            return None
        parts = [*self.conditions, *(condition_source(item) for item in own)]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return " && ".join(f"({part})" for part in parts)


_current: ContextVar[Trace | None] = ContextVar("keel_trace", default=None)


def current_trace() -> Trace | None:
    return _current.get()


def require_trace(what: str) -> Trace:
    trace = _current.get()
    if trace is None:
        raise TracingError(f"{what} can only be used inside a @keel.workflow function")
    return trace


@contextmanager
def tracing(workflow: str) -> Iterator[Trace]:
    if _current.get() is not None:
        raise TracingError(
            f"workflow '{workflow}' is defined inside another workflow's body; define "
            "workflows at module level"
        )
    trace = Trace(workflow)
    token = _current.set(trace)
    try:
        yield trace
    finally:
        _current.reset(token)


def condition_source(condition: object) -> str:
    if isinstance(condition, Value):
        return expression_of(condition)
    if isinstance(condition, str):
        return condition
    raise TracingError(
        f"a condition must be a comparison of future values (score > 0.8) or CEL text, "
        f"not {type(condition).__name__}"
    )


@contextmanager
def when(condition: Value | str) -> Iterator[None]:
    """Run the steps created inside this block only if ``condition`` holds.

    ``with keel.when(score > 0.8): escalate(claim)``. Blocks nest (their conditions are
    and-ed). Steps that read a skipped step's output are skipped too (join rules).
    """
    trace = require_trace("keel.when")
    trace.conditions.append(condition_source(condition))
    try:
        yield
    finally:
        trace.conditions.pop()

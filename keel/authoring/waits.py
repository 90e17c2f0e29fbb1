"""Waiting steps in a Python workflow: ``keel.approval``, ``keel.timer``, ``keel.signal``,
and another workflow called as a step (a child run).

Each records one node and returns its future output, like a task call: an approval's
output is the approver's form data, a signal's its payload, a child run's its output.
They take the node options of ``WaitOptions`` (``id``, ``when``, ``after``, ``join``,
``on_failure``; a timer all but ``on_failure``); none takes a retry policy, because
waiting is not attempted twice.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Unpack

from keel.authoring.options import (
    NodeOptions,
    TimerOptions,
    WaitOptions,
    option_names,
    read_options,
)
from keel.authoring.tasks import argument_data
from keel.authoring.tracing import RESULT, NodeOutput, require_trace
from keel.authoring.values import Value, expression_of, to_expression
from keel.errors import TracingError

if TYPE_CHECKING:
    from keel.authoring.workflows import Workflow


def _slug(text: str, fallback: str) -> str:
    """A node id from a title: ``"Fraud review"`` -> ``fraud_review``."""
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    if not slug or slug[0].isdigit():
        return fallback
    return slug


def schema_of(value: Any, what: str) -> dict[str, Any] | None:
    """A JSON Schema given as a dict or as a pydantic model class."""
    if value is None or isinstance(value, dict):
        return value
    if hasattr(value, "model_json_schema"):
        schema: dict[str, Any] = value.model_json_schema()
        return schema
    raise TracingError(f"{what} takes a JSON Schema (a dict) or a pydantic model class")


def _duration(value: str | float | timedelta | None) -> str | float | None:
    """A duration for the spec, which reads it (and reports it as written if it is bad)."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def approval(
    title: str,
    *,
    description: str | Value = "",
    assignees: Sequence[str] = (),
    role: str | None = None,
    form: Any = None,
    timeout: str | float | None = None,
    on_timeout: str = "reject",
    **options: Unpack[WaitOptions],
) -> Any:
    """Wait for a person to approve or reject. ``description`` may be a value or text
    with ``${{ expression }}`` parts, filled in when the approval opens; ``form`` (a
    pydantic model or JSON Schema) is what the approver fills in, and becomes the
    output. ``on_timeout``: ``reject``, ``approve``, ``notify`` or a node id to route to.
    """
    trace = require_trace("keel.approval")
    node = read_options(options, WaitOptions, "approval").node(
        trace, "approval", _slug(title, "approval")
    )
    node["title"] = title
    if isinstance(description, Value):
        description = "${{ " + expression_of(description) + " }}"
    if description:
        node["description"] = description
    if assignees:
        node["assignees"] = list(assignees)
    if role is not None:
        node["role"] = role
    schema = schema_of(form, "keel.approval(form=...)")
    if schema is not None:
        node["form"] = schema
    if timeout is not None:
        node["timeout"] = _duration(timeout)
    node["on_timeout"] = on_timeout
    return trace.add(node)


def timer(
    duration: str | float | None = None,
    *,
    until: Value | str | datetime | None = None,
    **options: Unpack[TimerOptions],
) -> Any:
    """Wait for ``duration`` (``"2h"``, seconds) or ``until`` a time: a value from the
    run's data or a date-time. Durable: it fires after restarts, and costs nothing."""
    trace = require_trace("keel.timer")
    node = read_options(options, TimerOptions, "timer").node(trace, "timer", "wait")
    if (duration is None) == (until is None):
        raise TracingError("keel.timer takes a duration or until=..., not both and not neither")
    if duration is not None:
        node["duration"] = _duration(duration)
    elif isinstance(until, datetime):
        node["until"] = to_expression(until.isoformat())
    else:
        node["until"] = to_expression(until)
    return trace.add(node)


def signal(
    name: str,
    *,
    schema: Any = None,
    timeout: str | float | None = None,
    **options: Unpack[WaitOptions],
) -> Any:
    """Wait for signal ``name`` sent to the run (``keel signal RUN NAME --data JSON``);
    its data is the output. A signal sent earlier is kept for this node."""
    trace = require_trace("keel.signal")
    node = read_options(options, WaitOptions, "signal").node(trace, "signal", _slug(name, "signal"))
    node["signal"] = name
    payload = schema_of(schema, "keel.signal(schema=...)")
    if payload is not None:
        node["payload_schema"] = payload
    if timeout is not None:
        node["timeout"] = _duration(timeout)
    return trace.add(node)


def child_run(
    workflow: Workflow[Any, Any],
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: NodeOptions | None = None,
) -> NodeOutput:
    """The subworkflow node for ``workflow`` called inside another workflow's body.
    Node settings come from keywords that are not inputs of the child (``WaitOptions``)
    and from ``options`` (``Workflow.options``). The child's definitions join the
    registry the parent is validated and started with."""
    trace = require_trace(f"workflow '{workflow.name}' as a step")
    parameters = inspect.signature(function).parameters
    own = {
        keyword: kwargs.pop(keyword)
        for keyword in option_names(WaitOptions)
        if keyword in kwargs and keyword not in parameters
    }
    node_options = read_options(own, WaitOptions, workflow.name).merged(options or NodeOptions())
    try:
        bound = inspect.signature(function).bind_partial(*args, **kwargs)
    except TypeError as exc:
        raise TracingError(f"{workflow.name}(): {exc}") from None
    node = node_options.node(trace, "subworkflow", workflow.name)
    node["workflow"] = workflow.name
    node["version"] = workflow.version
    arguments: Mapping[str, Any] = bound.arguments
    node["input"] = {
        name: argument_data(value, f"{workflow.name}({name}=...)")
        for name, value in arguments.items()
    }
    trace.registry = trace.registry.including(workflow.registry)
    # a child that returns one value ends with output {"result": value}; the step stands
    # for the value itself, as the child's return type says
    return trace.add(node, RESULT if workflow.single_result else None)

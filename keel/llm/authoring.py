"""``keel.llm.step`` and ``keel.llm.agent`` in a Python workflow: each records one node
(``llm`` / ``agent``, as YAML would) and returns its future output, like a task call.

A prompt is text with ``${{ expression }}`` parts, as in YAML; a Python value goes in by
name: ``prompt="Classify: ${{ text }}", values={"text": ticket.text}`` writes the
value's expression where ``${{ text }}`` stands, so the spec reads
``Classify: ${{ input.ticket.text }}`` whichever way it was written.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

from pydantic import ConfigDict, create_model

from keel.authoring.options import StepOptions, read_options
from keel.authoring.tasks import Task
from keel.authoring.templating import template
from keel.authoring.tracing import require_trace
from keel.authoring.values import Value, to_expression
from keel.authoring.waits import schema_of
from keel.authoring.workflows import _without_titles
from keel.errors import TracingError
from keel.spec.callables import is_injected


def _model_fields(
    what: str,
    model: str,
    prompt: str,
    system: str,
    max_tokens: int,
    output: Any,
    values: Mapping[str, Any] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    if not isinstance(prompt, str):
        raise TracingError(f"{what}: prompt is text with ${{{{ }}}} parts; pass values by name")
    fields: dict[str, Any] = {"model": model, "max_tokens": max_tokens,
                              "prompt": template(prompt, values or {}, what)}  # fmt: skip
    if system:
        fields["system"] = template(system, values or {}, what)
    schema = schema_of(output, f"{what}(output=...)")
    if schema is not None:
        fields["output"] = _without_titles(schema)
    fields.update({name: value for name, value in extra.items() if value is not None})
    return fields


def step(
    prompt: str,
    *,
    model: str,
    max_tokens: int,
    output: Any = None,
    system: str = "",
    values: Mapping[str, Any] | None = None,
    provider: str | None = None,
    temperature: float | None = None,
    output_mode: str | None = None,
    reasks: int | None = None,
    degrade_to: str | None = None,
    stream: bool | None = None,
    for_each: Value | Sequence[Any] | None = None,
    max_items: int | None = None,
    max_parallel: int | None = None,
    **options: Unpack[StepOptions],
) -> Any:
    """Ask a model (once, or once per item of ``for_each``: the templates read ``item``).
    ``output``: a pydantic model or JSON Schema the answer must fit (its data is the
    output); without one the output is the answer's text."""
    trace = require_trace("keel.llm.step")
    node = read_options(options, StepOptions, "keel.llm.step").node(trace, "llm", "llm")
    node.update(_model_fields("keel.llm.step", model, prompt, system, max_tokens, output, values, {
        "provider": provider, "temperature": temperature, "output_mode": output_mode,
        "reasks": reasks, "degrade_to": degrade_to, "stream": stream, "max_items": max_items,
        "max_parallel": max_parallel,
    }))  # fmt: skip
    if for_each is not None:
        node["for_each"] = to_expression(for_each)
    return trace.add(node)


def tool(
    task: Task[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
    approve: bool = False,
) -> dict[str, Any]:
    """An agent's tool from a ``@keel.task``: its parameters' JSON Schema is read from the
    function's signature, its description from the docstring, its retry policy and
    timeout are the task's. ``approve=True``: each call waits for a person to approve
    its arguments."""
    if not isinstance(task, Task):
        raise TracingError(f"an agent's tool must be a @keel.task, not {type(task).__name__}")
    data: dict[str, Any] = {"task": task.import_path, "parameters": parameters_of(task)}
    doc = description if description is not None else (task.__doc__ or "").strip()
    if doc:
        data["description"] = doc.split("\n\n")[0]
    if name:
        data["name"] = name
    if side_effect:
        data["side_effect"] = True
    if approve:
        data["approve"] = True
    retry = task.options_.retry
    if retry is not None:
        data["retry"] = retry.model_dump(mode="json", exclude_defaults=True)
    timeout = task.options_.fields.get("timeout")
    if timeout is not None:
        data["timeout"] = timeout
    return data


def parameters_of(task: Task[..., Any]) -> dict[str, Any]:
    """JSON Schema of a task's parameters (what the model must give), the step context
    left out."""
    function = task.__wrapped__
    hints = typing.get_type_hints(function)
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        hint = hints.get(name, Any)
        if is_injected(hint) or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (hint, default)
    model = create_model(f"{task.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    schema: dict[str, Any] = _without_titles(model.model_json_schema())
    return schema


def agent(
    prompt: str,
    *,
    model: str,
    max_tokens: int,
    max_turns: int,
    max_tool_calls: int,
    max_cost: float,
    tools: Sequence[Task[..., Any] | dict[str, Any]] = (),
    output: Any = None,
    system: str = "",
    values: Mapping[str, Any] | None = None,
    provider: str | None = None,
    temperature: float | None = None,
    output_mode: str | None = None,
    degrade_to: str | None = None,
    stream: bool | None = None,
    repeat_limit: int | None = None,
    **options: Unpack[StepOptions],
) -> Any:
    """A bounded agent loop: the model may call ``tools`` (``@keel.task`` functions, or
    ``keel.llm.tool(task, approve=True, ...)``) until it answers; at most ``max_turns``
    model requests, ``max_tool_calls`` tool calls and ``max_cost`` dollars."""
    trace = require_trace("keel.llm.agent")
    node = read_options(options, StepOptions, "keel.llm.agent").node(trace, "agent", "agent")
    node.update(_model_fields("keel.llm.agent", model, prompt, system, max_tokens, output, values, {
        "provider": provider, "temperature": temperature, "output_mode": output_mode,
        "degrade_to": degrade_to, "stream": stream, "repeat_limit": repeat_limit,
    }))  # fmt: skip
    node.update(max_turns=max_turns, max_tool_calls=max_tool_calls, max_cost=max_cost)
    node["tools"] = [item if isinstance(item, dict) else tool(item) for item in tools]
    return trace.add(node)

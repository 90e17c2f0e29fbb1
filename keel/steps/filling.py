"""A built-in step's templates filled in, where the step runs.

The engine hands a step its definition (``step``: the node as the spec has it, templates
unfilled) and the run's values its templates read (``values``: ``input`` and upstream
outputs). Here the templates are filled: expressions evaluated over those values and
over the secrets they name, each looked up now (``keel.runtime.secrets``) and so
revealed to this attempt, which redacts them from whatever it records.

A template that cannot be filled (an optional input left out, a secret not set) fails
the step without a retry (``StepTemplateError``): another attempt would see the same data.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError

from keel.errors import ExpressionError, NonRetryable
from keel.runtime.secrets import secret
from keel.spec.expressions import evaluate
from keel.spec.step_nodes import (
    SECRETS,
    EmailNode,
    HttpNode,
    ShellNode,
    SqlNode,
    StepNode,
    secret_reference,
)
from keel.spec.templates import fill_json

N = TypeVar("N", HttpNode, ShellNode, SqlNode, EmailNode)


class StepTemplateError(NonRetryable):
    """A template of the step could not be filled; the message names the field."""


class StepDefinitionError(NonRetryable):
    """The step's definition does not fit its kind (a spec from an older keel)."""


def step_node(kind: type[N], step: dict[str, Any]) -> N:
    """The node ``step`` defines (the attempt's ``timeout`` set apart: ``step_timeout``)."""
    try:
        return kind.model_validate({key: value for key, value in step.items() if key != "timeout"})
    except ValidationError as exc:
        raise StepDefinitionError(
            f"the step's definition is not a valid {kind.__name__}: {exc}"
        ) from None


def step_timeout(step: dict[str, Any]) -> float | None:
    """The attempt's timeout (seconds), which the engine puts beside the definition."""
    timeout = step.get("timeout")
    return float(timeout) if isinstance(timeout, int | float) else None


def filled(node: StepNode, values: dict[str, Any]) -> dict[str, Any]:
    """Every template field of ``node`` filled (unset fields left out)."""
    base = {"input": values.get("input"), "nodes": values.get("nodes") or {}}
    found: dict[str, Any] = {}
    for field, template in node.templates().items():

        def value(source: str, field: str = field) -> Any:
            return _value(source, base, field)

        found[field] = fill_json(template, value)
    return found


def _value(source: str, base: dict[str, Any], field: str) -> Any:
    try:
        name = secret_reference(source)
    except ValueError as exc:
        raise StepTemplateError(f"{field}: {exc}") from None
    try:
        variables = {**base, SECRETS: {name: secret(name)}} if name else base
        return evaluate(source, variables)
    except ExpressionError as exc:
        raise StepTemplateError(f"{field}: {exc}") from None

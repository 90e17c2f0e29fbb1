"""A model step's messages: its templates filled in from the run's data.

The engine evaluates what the templates read (``input``, upstream outputs) like any
argument and hands the values over (``values``); the step fills the templates itself,
so a map's templates can read each ``item`` too. A schema asked for in ``prompted`` mode
is written into the system message by the provider, not here.

A part that cannot be evaluated (an optional input left out) fails the step without a
retry: the run's data will not change on another attempt.
"""

from __future__ import annotations

from typing import Any

from keel.errors import ExpressionError
from keel.llm.errors import TemplateError
from keel.llm.types import Message
from keel.spec.expressions import evaluate
from keel.spec.templates import fill_template


def filled(template: str, values: dict[str, Any], item: Any = None, *, field: str = "") -> str:
    """``template`` filled in; ``field`` (``prompt``, ``system``) names it in an error."""
    variables = {"input": values.get("input"), "nodes": values.get("nodes") or {}, "item": item}
    try:
        return fill_template(template, lambda source: evaluate(source, variables))
    except ExpressionError as exc:
        raise TemplateError(f"{field or 'template'}: {exc}") from None


def first_messages(
    prompt: str, system: str, values: dict[str, Any], item: Any = None
) -> list[Message]:
    messages = [Message("system", filled(system, values, item, field="system"))] if system else []
    messages.append(Message("user", filled(prompt, values, item, field="prompt")))
    return messages

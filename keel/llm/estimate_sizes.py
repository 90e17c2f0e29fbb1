"""How many tokens a model node's first request takes, as far as it is known before the
run, for ``keel estimate``.

The templates are filled as the step fills them (``keel.llm.prompts``) with what is
known: the input given, literal values, and a map's item when its list comes from the
input. What is not known (an upstream node's output, input not given) is left out of
the text and counted by a rule instead:

- the output of an ``llm`` or ``agent`` node counts as that node's expected output and,
  at most, its ``max_tokens`` (a map's: per item; written back as JSON, a structured
  output or a list of answers, ``JSON_MARGIN`` more, for the spaces ``json.dumps`` puts
  between fields); a map without a bound makes what reads it unbounded too;
- anything else (a task's output, input not given) counts as ``ASSUMED_VALUE_TOKENS``;
- in ``min`` an unknown value counts as nothing.

``min`` is the known text alone; ``expected`` and ``max`` add the per-message overheads
(``keel.llm.tokens``) and what is sent beside the messages: the output schema and an
agent's tool definitions, as JSON text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keel.llm.estimate_runs import known_value
from keel.llm.tokens import count_message_tokens, count_tokens
from keel.llm.types import Message
from keel.spec.graph import safe_analyze
from keel.spec.model import AgentNode, LlmNode, WorkflowSpec
from keel.spec.templates import fill_template

#: tokens counted for a value not known before the run that no model node produces
ASSUMED_VALUE_TOKENS = 200


@dataclass(frozen=True, slots=True)
class Size:
    """Tokens: the least, the expected and the most."""

    min: int
    expected: int
    #: None: unbounded (a value read comes from an unbounded map)
    max: int | None


@dataclass(frozen=True, slots=True)
class RequestSize:
    size: Size
    #: each value not known before the run, with what it was counted as
    unknown: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Context:
    """What sizes are read from: the spec, each model node's output tokens (expected,
    most), and, for a map whose list is not known, one item's tokens (expected, most)."""

    spec: WorkflowSpec
    outputs: Mapping[str, tuple[int, int | None]]
    item: tuple[int, int | None] | None = None


def request_size(
    node: LlmNode | AgentNode, context: Context, variables: dict[str, Any]
) -> RequestSize:
    """The node's first request: its system and user messages, filled from
    ``variables`` (``input``: None when not given; ``item`` when known)."""
    notes: list[str] = []
    extra: list[int | None] = [0, 0]

    def fill(template: str) -> str:
        def value(source: str) -> Any:
            known, found = known_value(source, variables)
            if known:
                return found
            expected, most, why = value_size(source, context, variables)
            extra[0] = _plus(extra[0], expected)
            extra[1] = _plus(extra[1], most)
            notes.append(f"${{{{ {source} }}}}: {why}")
            return ""

        return fill_template(template, value)

    system, prompt = fill(node.system), fill(node.prompt)
    model = node.model
    messages = [Message("system", system)] if node.system else []
    messages.append(Message("user", prompt))
    framed = count_message_tokens(messages, model) + beside(node)
    least = count_tokens(system, model) + count_tokens(prompt, model)
    size = Size(least, framed + (extra[0] or 0), _plus(framed, extra[1]))
    return RequestSize(size, tuple(notes))


def _plus(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def value_size(
    source: str, context: Context, variables: dict[str, Any]
) -> tuple[int, int | None, str]:
    """Tokens an expression's value is counted as when it is not known before the run:
    (expected, most, how it was counted)."""
    info = safe_analyze(source)
    if info is None or info.dynamic_node_access:
        return ASSUMED_VALUE_TOKENS, ASSUMED_VALUE_TOKENS, f"{ASSUMED_VALUE_TOKENS} tokens assumed"
    expected = 0
    most: int | None = 0
    said: list[str] = []
    for ref in sorted(info.node_refs):
        ref_most: int | None
        if ref in context.outputs:
            ref_expected, ref_most = context.outputs[ref]
            said.append(f"output of '{ref}', {ref_expected} expected, {_most(ref_most)}")
        else:
            kind = context.spec.node(ref).kind if ref in context.spec.node_map else "node"
            ref_expected = ref_most = ASSUMED_VALUE_TOKENS
            said.append(f"output of {kind} '{ref}', {ASSUMED_VALUE_TOKENS} tokens assumed")
        expected, most = expected + ref_expected, _plus(most, ref_most)
    if "item" in info.free_names and "item" not in variables and context.item is not None:
        expected, most = expected + context.item[0], _plus(most, context.item[1])
        said.append(f"an item, {context.item[0]} expected, {_most(context.item[1])}")
    if not said:  # the input: not given, or without this field
        why = "input not given" if variables.get("input") is None else "not in the input"
        return (
            ASSUMED_VALUE_TOKENS,
            ASSUMED_VALUE_TOKENS,
            f"{why}, {ASSUMED_VALUE_TOKENS} tokens assumed",
        )
    return expected, most, "; ".join(said)


def _most(tokens: int | None) -> str:
    return "unbounded" if tokens is None else f"{tokens} at most"


def item_size(list_size: tuple[int, int | None], expected_items: float) -> tuple[int, int | None]:
    """One item of a list not known before the run: its share of the list's expected
    size, and at most the whole list."""
    expected, most = list_size
    return math.ceil(expected / max(expected_items, 1.0)), most


def beside(node: LlmNode | AgentNode) -> int:
    """Tokens sent beside the messages: the output schema and the tool definitions."""
    parts: list[Any] = []
    if node.output is not None:
        parts.append(node.output)
    if isinstance(node, AgentNode):
        parts.extend(
            {"name": tool.tool_name, "description": tool.description, "parameters": tool.parameters}
            for tool in node.tools
        )
    return sum(count_tokens(json.dumps(part, ensure_ascii=False), node.model) for part in parts)

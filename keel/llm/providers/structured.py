"""What every provider shares about structured output and token estimates.

``prompted`` mode (and ``json_object``, whose servers may not see the schema) writes the
schema into the system message; ``tools`` mode asks for one forced call of a tool named
``OUTPUT_TOOL`` whose arguments are the answer. When a provider sends no usage the
tokens are estimated as characters / 4 (rounded up), and the ``Usage`` says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from keel.llm.types import Message, Usage

#: the tool whose arguments are the answer in ``tools`` mode
OUTPUT_TOOL = "final_answer"
OUTPUT_TOOL_DESCRIPTION = "Give the final answer. Its arguments are the answer."
#: written before the schema in the system message; the stub server looks for it
SCHEMA_LEAD = (
    "Answer with one JSON object and nothing else (no prose, no code fence). "
    "It must fit this JSON Schema:"
)
_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")


def schema_name(schema: dict[str, Any]) -> str:
    """A name for ``schema`` as OpenAI wants one (``[A-Za-z0-9_-]{1,64}``)."""
    title = schema.get("title")
    name = _NAME_CHARACTERS.sub("_", title).strip("_")[:64] if isinstance(title, str) else ""
    return name or "answer"


def schema_instruction(schema: dict[str, Any]) -> str:
    return f"{SCHEMA_LEAD}\n{json.dumps(schema, ensure_ascii=False)}"


def with_instruction(messages: tuple[Message, ...], instruction: str) -> tuple[Message, ...]:
    """``messages`` with ``instruction`` added to the first system message (or in a new
    one in front)."""
    for index, message in enumerate(messages):
        if message.role == "system":
            content = f"{message.content}\n\n{instruction}" if message.content else instruction
            changed = Message("system", content)
            return (*messages[:index], changed, *messages[index + 1 :])
    return (Message("system", instruction), *messages)


def estimate_tokens(chars: int) -> int:
    return (chars + 3) // 4


def estimated_usage(sent: Iterable[str], answer: Iterable[str]) -> Usage:
    """Usage guessed from the characters sent and received (``reported=False``)."""
    return Usage(
        input_tokens=estimate_tokens(sum(len(text) for text in sent)),
        output_tokens=estimate_tokens(sum(len(text) for text in answer)),
        reported=False,
    )


def strict_ready(schema: Any) -> bool:
    """Whether OpenAI takes ``schema`` in strict mode: every object lists all its
    properties as required and forbids others (``additionalProperties: false``). A schema
    that is not is sent unstrict: the provider then only aims for it, and keel checks
    the answer against it all the same (a pydantic model with ``extra="forbid"`` and no
    optional fields gives a strict one)."""
    if isinstance(schema, list):
        return all(strict_ready(part) for part in schema)
    if not isinstance(schema, dict):
        return True
    properties = schema.get("properties")
    if isinstance(properties, dict) or schema.get("type") == "object":
        names = set(properties or {})
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required") or ()) != names:
            return False
    walked = ("properties", "items", "anyOf", "$defs", "definitions", "prefixItems")
    data_keys = ("default", "const", "enum", "examples")
    return all(
        strict_ready(value)
        for key, value in schema.items()
        if key in walked or (isinstance(value, dict) and key not in data_keys)
    )

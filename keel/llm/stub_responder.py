"""The stub server's default answers, by rule: JSON that fits the schema a request asks
for, else a short text that echoes the question. Enough for a demo to run offline;
nothing here is a model.

The schema is found where each output mode puts it: ``response_format`` (``json_schema``
or ``json_object`` with ``schema``), the tool ``tool_choice`` forces (``tools`` mode), or
the system message after ``keel``'s schema instruction (``prompted``). Each required
property is filled from its type: the first ``enum`` value unless the last user message
says otherwise (a sentiment enum gets ``negative`` for "angry", "broken", "refund"...,
``positive`` for "thanks", "great", "love"..., else ``neutral``; any other enum the value
the message names), a number within its bounds, a string from its format or name
(``summary``, ``reason``... get an excerpt of the message).
"""

from __future__ import annotations

import json
import re
from typing import Any

from keel.llm.providers.structured import OUTPUT_TOOL, SCHEMA_LEAD
from keel.llm.stub_replies import Json, Reply, Text, forced_tool

NEGATIVE = {"angry", "broken", "refund", "terrible", "awful", "hate", "worst", "bad",
            "disappointed", "useless", "late", "never", "cancel", "complaint"}  # fmt: skip
POSITIVE = {"thanks", "thank", "great", "love", "excellent", "awesome", "happy", "perfect",
            "good", "wonderful", "amazing"}  # fmt: skip
_PROSE_NAMES = ("summary", "reason", "reply", "answer", "explanation", "text", "message",
                "response", "description", "comment", "title")  # fmt: skip
_FORMATS = {"date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00",
            "email": "someone@example.com", "uri": "https://example.com/",
            "uuid": "00000000-0000-4000-8000-000000000000"}  # fmt: skip
_MAX_DEPTH = 8


def rule_based(request: dict[str, Any]) -> Reply:
    """The answer the stub gives ``request`` when no reply is scripted."""
    question = last_user_text(request)
    schema = requested_schema(request)
    if schema is not None:
        return Json(sample(schema, question))
    excerpt = " ".join(question.split())[:80]
    return Text(f"stub reply to: {excerpt}" if excerpt else "stub reply")


def requested_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else {}
    if response_format.get("type") == "json_object" and isinstance(
        response_format.get("schema"), dict
    ):
        return dict(response_format["schema"])
    tool = forced_tool(request) or (
        OUTPUT_TOOL if request.get("tool_choice") == "required" else None
    )
    for spec in request.get("tools") or ():
        function = spec.get("function") or {}
        if tool is not None and function.get("name") == tool:
            parameters = function.get("parameters")
            return parameters if isinstance(parameters, dict) else {}
    for message in request.get("messages") or ():
        content = message.get("content")
        if message.get("role") == "system" and isinstance(content, str) and SCHEMA_LEAD in content:
            try:
                value, _ = json.JSONDecoder().raw_decode(content.split(SCHEMA_LEAD, 1)[1].strip())
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}
    if response_format.get("type") == "json_object":
        return {}
    return None


def last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or ()):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else ""
    return ""


def sample(
    schema: dict[str, Any],
    question: str,
    name: str = "",
    *,
    root: dict[str, Any] | None = None,
    depth: int = 0,
) -> Any:
    """A value that fits ``schema`` (as far as types, enums and bounds go)."""
    root = schema if root is None else root
    if depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return sample(_resolve(ref, root), question, name, root=root, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return choose(schema["enum"], question)
    for key in ("anyOf", "oneOf", "allOf"):
        options = [
            o for o in schema.get(key) or () if isinstance(o, dict) and o.get("type") != "null"
        ]
        if options:
            return sample(options[0], question, name, root=root, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        wanted = schema.get("required") or list(properties)
        return {key: sample(properties.get(key) or {}, question, key, root=root, depth=depth + 1)
                for key in wanted}  # fmt: skip
    if kind == "array":
        count = 0 if schema.get("maxItems") == 0 else max(1, schema.get("minItems") or 0)
        items = schema.get("items")
        item: dict[str, Any] = items if isinstance(items, dict) else {}
        return [sample(item, question, name, root=root, depth=depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, question, name)


def choose(values: list[Any], question: str) -> Any:
    """The enum value the question points to, else the first."""
    words = set(re.findall(r"[a-z']+", question.lower()))
    lowered = {str(value).lower(): value for value in values}
    if {"negative", "positive"} <= set(lowered):
        if words & NEGATIVE:
            return lowered["negative"]
        if words & POSITIVE:
            return lowered["positive"]
        return lowered.get("neutral", values[0])
    named = [value for value in values if isinstance(value, str) and value.lower() in words]
    return named[0] if named else values[0]


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    """A local ``$ref`` (``#/$defs/Name``); anything else resolves to no constraint."""
    node: Any = root
    for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else ():
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    """1 (or 0.5) moved inside the bounds the schema sets."""
    value: float = 1 if integer else 0.5
    step = 1 if integer else 0.5
    bound = schema.get("minimum")
    if isinstance(bound, int | float):
        value = max(value, bound)
    bound = schema.get("exclusiveMinimum")
    if isinstance(bound, int | float) and value <= bound:
        value = bound + step
    bound = schema.get("maximum")
    if isinstance(bound, int | float) and value > bound:
        value = bound
    bound = schema.get("exclusiveMaximum")
    if isinstance(bound, int | float) and value >= bound:
        value = bound - step
    return int(value) if integer else float(value)


def _string(schema: dict[str, Any], question: str, name: str) -> str:
    text = _FORMATS.get(str(schema.get("format")), "")
    if not text:
        prose = any(word in name.lower() for word in _PROSE_NAMES)
        excerpt = " ".join(question.split())[:80]
        text = excerpt if prose and excerpt else f"example {name}".strip()
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text = text.ljust(low, "x")
    if isinstance(high, int):
        text = text[:high]
    return text

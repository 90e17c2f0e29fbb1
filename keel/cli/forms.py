"""An approval's form (a JSON Schema object) described for the person who fills it in:
its fields with their types, whether each is required, its default and description,
and an example of the ``--data`` that ``keel approve`` takes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: a placeholder per JSON type, for the example ``--data``
_EXAMPLES: dict[str, Any] = {"string": "...", "integer": 0, "number": 0, "boolean": True,
                             "array": [], "object": {}, "null": None}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    type: str
    required: bool
    default: Any
    has_default: bool
    description: str


def _type_of(field: dict[str, Any]) -> str:
    kind = field.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if isinstance(kind, str):
        return kind
    if "enum" in field:
        return "one of " + ", ".join(json.dumps(v) for v in field["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(field.get(key), list):
            return " or ".join(_type_of(f) for f in field[key] if isinstance(f, dict))
    return "any"


def form_fields(schema: dict[str, Any]) -> list[FormField]:
    properties = schema.get("properties")
    required = schema.get("required") or []
    if not isinstance(properties, dict):
        return []
    fields = []
    for name, field in properties.items():
        field = field if isinstance(field, dict) else {}
        fields.append(FormField(
            name, _type_of(field), name in required, field.get("default"), "default" in field,
            str(field.get("description") or ""),
        ))  # fmt: skip
    return sorted(fields, key=lambda field: not field.required)  # required ones first


def form_summary(schema: dict[str, Any]) -> str:
    """One line: ``reason: string, required; score: integer = 0``."""
    parts = []
    for field in form_fields(schema):
        how = ", required" if field.required else ""
        if field.has_default:
            how += f" = {json.dumps(field.default)}"
        parts.append(f"{field.name}: {field.type}{how}")
    return "; ".join(parts)


def form_help(schema: dict[str, Any], command: str) -> list[str]:
    """The form's fields, one a line, and how to give them to ``command``."""
    fields = form_fields(schema)
    title = schema.get("title")
    about = schema.get("description")
    lines = ["the form" + (f" {title!r}" if title else "") + (f" ({about})" if about else "")
             + " has these fields:"]  # fmt: skip
    width = max((len(field.name) for field in fields), default=0)
    kinds = max((len(field.type) for field in fields), default=0)
    for field in fields:
        how = "required" if field.required else "optional"
        if field.has_default:
            how += f", default {json.dumps(field.default)}"
        line = f"  {field.name:<{width}}  {field.type:<{kinds}}  {how}"
        lines.append(line + (f": {field.description}" if field.description else ""))
    example = {f.name: _EXAMPLES.get(f.type, "...") for f in fields if f.required}
    lines.append("give them as JSON with --data (or --data @file.json), e.g.:")
    lines.append(f"  {command} --data '{json.dumps(example)}'")
    return lines

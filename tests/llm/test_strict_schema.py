"""OpenAI refuses a ``strict`` json_schema unless every object requires all its
properties and forbids others; keel asks for strict only when the schema is so."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from keel.llm.providers.openai_wire import request_body
from keel.llm.providers.structured import strict_ready
from keel.llm.types import Message, ModelRequest


class Loose(BaseModel):
    sentiment: str
    note: str = ""


class Tight(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sentiment: str
    tags: list[str]


def _strict(schema: dict[str, Any]) -> object:
    request = ModelRequest(model="m", messages=(Message("user", "hi"),), max_tokens=5,
                           output_schema=schema, output_mode="json_schema")  # fmt: skip
    return request_body(request)["response_format"]["json_schema"]["strict"]


def test_a_schema_openai_takes_strictly_is_sent_strict() -> None:
    schema = Tight.model_json_schema()
    assert strict_ready(schema)
    assert _strict(schema) is True


def test_optional_fields_or_open_objects_are_sent_unstrict() -> None:
    assert not strict_ready(Loose.model_json_schema())  # "note" is not required
    assert _strict(Loose.model_json_schema()) is False
    inner: dict[str, Any] = {"type": "object", "properties": {"b": {"type": "string"}}}
    nested = {"type": "object", "additionalProperties": False, "required": ["a"],
              "properties": {"a": inner}}  # fmt: skip
    assert not strict_ready(nested)  # the inner object allows other properties
    inner.update(additionalProperties=False, required=["b"])
    assert strict_ready(nested)

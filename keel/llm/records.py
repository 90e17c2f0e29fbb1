"""Requests and answers as JSON, and a request's fingerprint.

The ledger keeps each request and answer as data; a later attempt rebuilds the answer
from it and never calls the provider again for a request with the same fingerprint.
The fingerprint covers what decides the answer (provider, model, settings, messages,
tools, schema), so a changed prompt, model or schema is asked again, never served an
answer to a different question.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic_core import to_jsonable_python

from keel.llm.types import ModelRequest, ModelResponse, ToolCall, Usage
from keel.spec.canonical import canonical_json


def request_data(request: ModelRequest) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable_python(request)
    return data


def fingerprint(provider: str, request: ModelRequest) -> str:
    """sha-256 over the provider's name and the request as canonical JSON (streaming
    left out: it changes how the answer arrives, not what it is)."""
    data = request_data(request)
    data.pop("stream", None)
    text = canonical_json({"provider": provider, "request": data})
    return hashlib.sha256(text.encode()).hexdigest()


def response_data(response: ModelResponse) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable_python(response)
    return data


def response_from(data: dict[str, Any]) -> ModelResponse:
    """The answer ``response_data`` wrote."""
    usage = Usage(**data.get("usage") or {})
    calls = tuple(ToolCall(**call) for call in data.get("tool_calls") or ())
    fields = {key: value for key, value in data.items() if key not in ("usage", "tool_calls")}
    return ModelResponse(**fields, usage=usage, tool_calls=calls)

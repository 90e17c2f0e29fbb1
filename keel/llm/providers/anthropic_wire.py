"""Anthropic's Messages API format: a ``ModelRequest`` as the body the SDK sends, and a
message (as its JSON data) back as a ``ModelResponse``.

Pure, and free of the ``anthropic`` package, so it is checked without it. System
messages become the ``system`` field; tool results go back in user messages (one for
consecutive results, as the API wants). Structured output is a forced call of
``OUTPUT_TOOL`` whatever the mode asks, except ``prompted`` (the schema in the system
text): the only form every Claude model honours. ``input_tokens`` counts every input
token, cache reads and writes included, as OpenAI's ``prompt_tokens`` does, so the
two price alike; ``cached_input_tokens`` are the cache reads. ``temperature`` is not
sent: the Messages API (as ``anthropic`` 2 speaks it) has none.
"""

from __future__ import annotations

import json
from typing import Any

from keel.llm.providers.structured import (
    OUTPUT_TOOL,
    OUTPUT_TOOL_DESCRIPTION,
    estimated_usage,
    schema_instruction,
    with_instruction,
)
from keel.llm.types import FinishReason, Message, ModelRequest, ModelResponse, ToolCall, Usage

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
}


def request_body(request: ModelRequest) -> dict[str, Any]:
    """The keyword arguments of ``messages.create`` (or ``messages.stream``)."""
    schema = request.output_schema
    messages = request.messages
    if schema is not None and request.output_mode == "prompted":
        messages = with_instruction(messages, schema_instruction(schema))
    tools = [
        {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
        for tool in request.tools
    ]
    body: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens}
    system = [message.content for message in messages if message.role == "system"]
    if any(system):
        body["system"] = "\n\n".join(text for text in system if text)
    body["messages"] = wire_messages(messages)
    if schema is not None and request.output_mode in ("json_schema", "json_object", "tools"):
        output = {"name": OUTPUT_TOOL, "description": OUTPUT_TOOL_DESCRIPTION}
        tools.append({**output, "input_schema": schema})
        body["tool_choice"] = (
            {"type": "any"} if request.tools else {"type": "tool", "name": OUTPUT_TOOL}
        )
    if tools:
        body["tools"] = tools
    return body


def wire_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The conversation without system messages; messages of one role in a row merged."""
    wire: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})
    return wire


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        return [{**result, "content": message.content or ""}]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": _arguments(call.arguments)})  # fmt: skip
    return blocks


def _arguments(text: str) -> dict[str, Any]:
    """A recorded call's arguments as the object the API wants back."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"arguments": text}


def response_from(
    data: dict[str, Any], request: ModelRequest, body: dict[str, Any], latency: float
) -> ModelResponse:
    """``data``: the message as JSON (``Message.model_dump()``)."""
    blocks = data.get("content") or []
    texts = [block.get("text") or "" for block in blocks if block.get("type") == "text"]
    text = "".join(texts) if texts else None
    calls = [
        ToolCall(block["id"], block["name"], json.dumps(block.get("input"), ensure_ascii=False))
        for block in blocks
        if block.get("type") == "tool_use"
    ]
    if request.output_schema is not None and OUTPUT_TOOL in {call.name for call in calls}:
        output = next(call for call in calls if call.name == OUTPUT_TOOL)
        calls.remove(output)
        text = output.arguments
    reason = STOP_REASONS.get(data.get("stop_reason") or "", "stop")
    if reason == "tool_calls" and not calls:
        reason = "stop"
    return ModelResponse(
        text=text,
        finish_reason=reason,
        usage=_usage(data.get("usage"), body, text, calls),
        model=data.get("model") or request.model,
        tool_calls=tuple(calls),
        refusal=(text or "refused") if reason == "refusal" else None,
        response_id=data.get("id"),
        latency=latency,
    )


def _usage(
    usage: dict[str, Any] | None, body: dict[str, Any], text: str | None, calls: list[ToolCall]
) -> Usage:
    if not usage:
        sent = [body.get("system") or ""] + [json.dumps(m["content"]) for m in body["messages"]]
        received = [text or ""] + [call.name + call.arguments for call in calls]
        return estimated_usage(sent, received)
    read = usage.get("cache_read_input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    return Usage(
        input_tokens=(usage.get("input_tokens") or 0) + read + written,
        output_tokens=usage.get("output_tokens") or 0,
        cached_input_tokens=read,
    )

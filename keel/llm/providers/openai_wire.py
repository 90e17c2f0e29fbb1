"""The chat-completions wire format: a ``ModelRequest`` as the body the OpenAI SDK
sends, and a completion (whole, or assembled from streamed chunks) back as a
``ModelResponse``.

Pure: no client, no clock. Finish reasons are normalised (``content_filter`` and a set
``refusal`` are a refusal); in ``tools`` mode the forced call's arguments become the
answer's text and the call is not reported as a tool call. A completion without usage
is estimated from the characters sent (the messages as sent, instructions included)
and received.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage

from keel.llm.providers.structured import (
    OUTPUT_TOOL,
    OUTPUT_TOOL_DESCRIPTION,
    estimated_usage,
    schema_instruction,
    schema_name,
    strict_ready,
    with_instruction,
)
from keel.llm.types import (
    FinishReason,
    Message,
    ModelRequest,
    ModelResponse,
    OnText,
    ProviderError,
    ToolCall,
    Usage,
)

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "refusal",
}


def request_body(request: ModelRequest, *, max_tokens_field: str = "max_tokens") -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` for ``request``."""
    messages = request.messages
    schema = request.output_schema
    tools = [_tool(tool.name, tool.description, tool.parameters) for tool in request.tools]
    body: dict[str, Any] = {"model": request.model}
    if schema is not None and request.output_mode == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": schema_name(schema),
                "schema": schema,
                "strict": strict_ready(schema),
            },
        }
    elif schema is not None and request.output_mode == "json_object":
        # the schema beside the mode is what llama.cpp reads; servers that ignore it
        # (vLLM, Ollama, OpenAI itself, which also wants "JSON" in the prompt) read the
        # instruction
        body["response_format"] = {"type": "json_object", "schema": schema}
        messages = with_instruction(messages, schema_instruction(schema))
    elif schema is not None and request.output_mode == "prompted":
        messages = with_instruction(messages, schema_instruction(schema))
    elif schema is not None and request.output_mode == "tools":
        tools.append(_tool(OUTPUT_TOOL, OUTPUT_TOOL_DESCRIPTION, schema))
        forced = {"type": "function", "function": {"name": OUTPUT_TOOL}}
        body["tool_choice"] = "required" if request.tools else forced
    body["messages"] = [wire_message(message) for message in messages]
    if tools:
        body["tools"] = tools
    body[max_tokens_field] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]  # fmt: skip
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    function = {"name": name, "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


@dataclass
class Answer:
    """What a completion said, before keel's normalisation."""

    model: str
    response_id: str | None = None
    text: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: CompletionUsage | None = None


def from_completion(completion: object, provider: str) -> Answer:
    """``completion``: what the SDK made of the body (not a ``ChatCompletion`` when the
    endpoint is not what it should be)."""
    if not isinstance(completion, ChatCompletion):
        raise not_a_completion(provider)
    if not completion.choices:
        raise ProviderError(f"provider '{provider}' answered without any choice")
    message = completion.choices[0].message
    calls = []
    for call in message.tool_calls or ():
        function = getattr(call, "function", None)
        if function is not None:
            calls.append(ToolCall(call.id, function.name, function.arguments or ""))
    return Answer(
        model=completion.model,
        response_id=completion.id,
        text=message.content,
        refusal=message.refusal,
        tool_calls=calls,
        finish_reason=completion.choices[0].finish_reason,
        usage=completion.usage,
    )


def not_a_completion(provider: str) -> ProviderError:
    return ProviderError(
        f"provider '{provider}' answered with something that is not a chat completion "
        "(is its base_url an OpenAI-compatible endpoint, ending in /v1?)"
    )


def from_chunks(
    chunks: Iterator[ChatCompletionChunk], model: str, on_text: OnText | None, provider: str
) -> Answer:
    """The answer the chunks of a stream add up to; ``on_text`` gets each piece of text
    (and of the output tool's arguments, which become the text in ``tools`` mode)."""
    answer = Answer(model=model)
    texts: list[str] = []
    refusals: list[str] = []
    calls: dict[int, tuple[list[str], list[str], list[str]]] = {}  # id, name, arguments
    received = False
    for chunk in chunks:
        received = True
        answer.model = chunk.model or answer.model
        answer.response_id = chunk.id or answer.response_id
        if chunk.usage is not None:
            answer.usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.content:
                texts.append(delta.content)
                if on_text is not None:
                    on_text(delta.content)
            if delta.refusal:
                refusals.append(delta.refusal)
            for piece in delta.tool_calls or ():
                ids, names, arguments = calls.setdefault(piece.index, ([], [], []))
                if piece.id and not ids:
                    ids.append(piece.id)
                if piece.function is not None:
                    if piece.function.name and not names:
                        names.append(piece.function.name)
                    part = piece.function.arguments or ""
                    arguments.append(part)
                    # the output tool's arguments are the answer's text: stream them too
                    if part and names == [OUTPUT_TOOL] and on_text is not None:
                        on_text(part)
            if choice.finish_reason:
                answer.finish_reason = choice.finish_reason
    if not received:  # not a stream of chunks: an HTML page, JSON of another API...
        raise not_a_completion(provider)
    answer.text = "".join(texts) if texts else None
    answer.refusal = "".join(refusals) if refusals else None
    answer.tool_calls = [
        ToolCall(ids[0] if ids else f"call_{index}", "".join(names), "".join(arguments))
        for index, (ids, names, arguments) in sorted(calls.items())
    ]
    return answer


def response_from(
    answer: Answer, request: ModelRequest, body: dict[str, Any], latency: float
) -> ModelResponse:
    text, calls = answer.text, list(answer.tool_calls)
    if request.output_schema is not None and request.output_mode == "tools":
        output = next((call for call in calls if call.name == OUTPUT_TOOL), None)
        if output is not None:
            calls.remove(output)
            text = output.arguments
    return ModelResponse(
        text=text,
        finish_reason=_finish_reason(answer, bool(calls)),
        usage=_usage(answer, body),
        model=answer.model,
        tool_calls=tuple(calls),
        refusal=answer.refusal,
        response_id=answer.response_id,
        latency=latency,
    )


def _finish_reason(answer: Answer, has_calls: bool) -> FinishReason:
    if answer.refusal:
        return "refusal"
    reason = FINISH_REASONS.get(answer.finish_reason or "", "stop")
    if reason == "stop" and has_calls:
        return "tool_calls"
    if reason == "tool_calls" and not has_calls:  # the forced output call, now the text
        return "stop"
    return reason


def _usage(answer: Answer, body: dict[str, Any]) -> Usage:
    usage = answer.usage
    if usage is None:
        sent = [text for message in body["messages"] for text in _texts(message)]
        received = [answer.text or "", answer.refusal or ""]
        received += [call.name + call.arguments for call in answer.tool_calls]
        return estimated_usage(sent, received)
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_input_tokens=(prompt.cached_tokens or 0) if prompt is not None else 0,
        reasoning_tokens=(completion.reasoning_tokens or 0) if completion is not None else 0,
    )


def _texts(message: dict[str, Any]) -> list[str]:
    texts = [message["content"]] if isinstance(message.get("content"), str) else []
    for call in message.get("tool_calls", ()):
        texts.append(call["function"]["name"] + call["function"]["arguments"])
    return texts

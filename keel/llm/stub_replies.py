"""What keel's stub server (``keel.llm.stub_server``) answers: the kinds of reply a
test scripts, and how each is written on the wire (a chat completion, or its SSE
chunks when the request streams).

A reply is a small frozen dataclass. Every answer kind takes ``usage`` (``"auto"``:
computed from the request, ``None``: sent without usage, or a ``StubUsage``), ``delay``
(seconds to wait before answering) and ``model`` (default: the model asked for).
``"auto"`` usage is deterministic: prompt tokens are the characters of every message's
content // 4, completion tokens the characters of the answer // 4.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

#: the stub's ``created`` timestamp, fixed so that answers are reproducible
CREATED = 1_700_000_000


@dataclass(frozen=True, slots=True)
class StubUsage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0


UsageSetting = StubUsage | Literal["auto"] | None


@dataclass(frozen=True, kw_only=True)
class _Answer:
    usage: UsageSetting = "auto"
    delay: float = 0.0
    model: str | None = None


@dataclass(frozen=True)
class Text(_Answer):
    text: str
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Json(_Answer):
    """A JSON value as the answer: as the text, or as the arguments of the tool the
    request forces (``tool_choice`` naming a function, as ``tools`` mode does)."""

    value: Any


@dataclass(frozen=True)
class ToolCalls(_Answer):
    """Calls of the request's tools: (name, arguments as a dict or as raw text)."""

    calls: tuple[tuple[str, dict[str, Any] | str], ...]
    text: str | None = None


@dataclass(frozen=True)
class Truncated(_Answer):
    """Text cut off at ``max_tokens``: ``finish_reason="length"``."""

    text: str


@dataclass(frozen=True)
class Refusal(_Answer):
    message: str = "I can't help with that."


@dataclass(frozen=True)
class Malformed(_Answer):
    """Text that is not valid JSON, where JSON was asked for."""

    text: str = '{"answer": "unfinished'


@dataclass(frozen=True, kw_only=True)
class HttpError:
    status: int
    message: str = "stub error"
    #: the ``Retry-After`` header as sent (seconds, or an HTTP date)
    retry_after: str | None = None
    retry_after_ms: int | None = None
    delay: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Raw:
    """A body sent as it is: what an endpoint that is not a chat completion API says."""

    body: str
    status: int = 200
    content_type: str = "text/html"
    delay: float = 0.0


Reply = Text | Json | ToolCalls | Truncated | Refusal | Malformed | HttpError | Raw
Answer = Text | Json | ToolCalls | Truncated | Refusal | Malformed


@dataclass(frozen=True)
class Written:
    """One reply as the server sends it: status, headers, and a body or SSE events."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: tuple[bytes, ...] | None = None


def write(reply: Reply, request: dict[str, Any], number: int) -> Written:
    """``reply`` to ``request``, the ``number``-th the server received (for ids)."""
    if isinstance(reply, Raw):
        return Written(reply.status, {"Content-Type": reply.content_type}, reply.body.encode())
    if isinstance(reply, HttpError):
        headers = {"Content-Type": "application/json"}
        if reply.retry_after is not None:
            headers["Retry-After"] = reply.retry_after
        if reply.retry_after_ms is not None:
            headers["retry-after-ms"] = str(reply.retry_after_ms)
        error = {"message": reply.message, "type": "stub_error", "code": reply.status}
        return Written(reply.status, headers, _dumps({"error": error}))
    message, finish = _message(reply, request, number)
    usage = _usage(reply.usage, request, message)
    head = {"id": f"chatcmpl-stub-{number}", "created": CREATED,
            "model": reply.model or request.get("model") or "stub-small"}  # fmt: skip
    if request.get("stream"):
        include = bool((request.get("stream_options") or {}).get("include_usage"))
        events = tuple(_chunks(head, message, finish, usage if include else None))
        return Written(200, {"Content-Type": "text/event-stream"}, events=events)
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    body = {**head, "object": "chat.completion", "choices": [choice]}
    if usage is not None:
        body["usage"] = usage
    return Written(200, {"Content-Type": "application/json"}, _dumps(body))


def _message(reply: Answer, request: dict[str, Any], number: int) -> tuple[dict[str, Any], str]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if isinstance(reply, Refusal):
        message["refusal"] = reply.message
        return message, "stop"
    if isinstance(reply, Text):
        message["content"] = reply.text
        return message, reply.finish_reason
    if isinstance(reply, Truncated | Malformed):
        message["content"] = reply.text
        return message, "length" if isinstance(reply, Truncated) else "stop"
    if isinstance(reply, Json):
        forced = forced_tool(request)
        if forced is None:
            message["content"] = json.dumps(reply.value)
            return message, "stop"
        calls: tuple[tuple[str, dict[str, Any] | str], ...] = ((forced, reply.value),)
    else:
        calls = reply.calls
        message["content"] = reply.text
    message["tool_calls"] = [
        {"id": f"call_{number}_{index}", "type": "function",
         "function": {"name": name, "arguments": _arguments(args)}}
        for index, (name, args) in enumerate(calls)
    ]  # fmt: skip
    return message, "tool_calls"


def _arguments(args: dict[str, Any] | str) -> str:
    return args if isinstance(args, str) else json.dumps(args)


def forced_tool(request: dict[str, Any]) -> str | None:
    """The function ``tool_choice`` forces, if it names one."""
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return name if isinstance(name, str) else None
    return None


def _usage(
    setting: UsageSetting, request: dict[str, Any], message: dict[str, Any]
) -> dict[str, Any] | None:
    if setting is None:
        return None
    if setting == "auto":
        prompt = sum(len(text) for m in request.get("messages") or () for text in _texts(m))
        answer = len(message["content"] or "") + len(message["refusal"] or "")
        answer += sum(len(call["function"]["arguments"]) for call in message.get("tool_calls", ()))
        setting = StubUsage(prompt // 4, answer // 4)
    return {
        "prompt_tokens": setting.prompt_tokens,
        "completion_tokens": setting.completion_tokens,
        "total_tokens": setting.prompt_tokens + setting.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": setting.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": setting.reasoning_tokens},
    }


def _texts(message: object) -> list[str]:
    """The text of a request message: its content as a string or as text parts."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return []


def _chunks(
    head: dict[str, Any], message: dict[str, Any], finish: str, usage: dict[str, Any] | None
) -> Iterator[bytes]:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return _event({**head, "object": "chat.completion.chunk", "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces(message["content"] or ""):
        yield chunk({"content": piece})
    for piece in pieces(message["refusal"] or ""):
        yield chunk({"refusal": piece})
    for index, call in enumerate(message.get("tool_calls", ())):
        function = {"name": call["function"]["name"], "arguments": ""}
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": function}]})  # fmt: skip
        for piece in pieces(call["function"]["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, finish)
    if usage is not None:
        yield _event({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def pieces(text: str) -> list[str]:
    """``text`` cut after each run of spaces (a word and the spaces after it)."""
    return re.findall(r"\S+\s*|\s+", text)


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(data) + b"\n\n"


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()

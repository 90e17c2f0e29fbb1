"""The Anthropic provider: how a request maps to the Messages API and an answer back
(pure), that a missing ``anthropic`` package is a clear error, and, over real HTTP to a
canned Messages endpoint on the loopback, a whole answer, a streamed one and a 429."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keel.llm.config import ProviderConfig
from keel.llm.providers.anthropic_provider import INSTALL_HINT, Anthropic
from keel.llm.providers.anthropic_wire import request_body, response_from
from keel.llm.providers.structured import OUTPUT_TOOL, SCHEMA_LEAD
from keel.llm.types import Message, ModelRequest, OutputMode, ProviderError, ToolCall, ToolSpec

SCHEMA = {"type": "object", "properties": {"sentiment": {"type": "string"}},
          "required": ["sentiment"]}  # fmt: skip
LOOKUP = ToolSpec("lookup_order", "Find an order.", {"type": "object"})
CALL = ToolCall("toolu_1", "lookup_order", '{"order": "A-17"}')
CONVERSATION = (
    Message("system", "You sort tickets."),
    Message("user", "Where is A-17?"),
    Message(
        "assistant", "Let me look.", tool_calls=(CALL, ToolCall("toolu_2", "lookup_order", "{"))
    ),
    Message("tool", '{"status": "shipped"}', tool_call_id="toolu_1"),
    Message("tool", "not found", tool_call_id="toolu_2"),
)


def request(
    mode: OutputMode = "text",
    *,
    schema: dict[str, Any] | None = SCHEMA,
    tools: tuple[ToolSpec, ...] = (),
    stream: bool = False,
) -> ModelRequest:
    return ModelRequest("claude-x", CONVERSATION, max_tokens=50, temperature=0.3,
                        output_schema=schema, output_mode=mode, tools=tools,
                        stream=stream)  # fmt: skip


# --- the request --------------------------------------------------------------------------


def test_a_conversation_in_the_messages_format() -> None:
    body = request_body(request(schema=None, tools=(LOOKUP,)))
    assert body["system"] == "You sort tickets."
    assert body["max_tokens"] == 50
    assert "temperature" not in body  # the Messages API has none
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Where is A-17?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup_order",
             "input": {"order": "A-17"}},
            {"type": "tool_use", "id": "toolu_2", "name": "lookup_order",
             "input": {"arguments": "{"}}]},
        {"role": "user", "content": [  # both results in one message, as the API wants
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"status": "shipped"}'},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "not found"}]},
    ]  # fmt: skip
    assert body["tools"] == [{"name": "lookup_order", "description": "Find an order.",
                              "input_schema": {"type": "object"}}]  # fmt: skip
    assert "tool_choice" not in body


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "tools"])
def test_structured_output_is_a_forced_tool(mode: OutputMode) -> None:
    body = request_body(request(mode))
    assert body["tools"][-1]["name"] == OUTPUT_TOOL
    assert body["tools"][-1]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": OUTPUT_TOOL}
    assert body["system"] == "You sort tickets."
    with_tools = request_body(request(mode, tools=(LOOKUP,)))
    assert [tool["name"] for tool in with_tools["tools"]] == ["lookup_order", OUTPUT_TOOL]
    assert with_tools["tool_choice"] == {"type": "any"}


def test_prompted_output_is_in_the_system_text() -> None:
    body = request_body(request("prompted"))
    assert body["system"].startswith("You sort tickets.\n\n" + SCHEMA_LEAD)
    assert "tools" not in body


# --- the answer ---------------------------------------------------------------------------


def message(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> dict[str, Any]:
    counts = {"input_tokens": 10, "output_tokens": 4, **usage}
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": content, "stop_reason": stop, "usage": counts}  # fmt: skip


def test_a_text_answer_and_its_usage() -> None:
    data = message([{"type": "text", "text": "Shipped."}], cache_read_input_tokens=30,
                   cache_creation_input_tokens=5)  # fmt: skip
    response = response_from(data, request(schema=None), request_body(request()), 0.5)
    assert (response.text, response.finish_reason, response.model) == (
        "Shipped.",
        "stop",
        "claude-x",
    )
    assert response.response_id == "msg_1"
    usage = response.usage
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (45, 30, 4)
    assert usage.reported


def test_the_output_tool_is_the_answer() -> None:
    data = message([{"type": "tool_use", "id": "t", "name": OUTPUT_TOOL,
                     "input": {"sentiment": "negative"}}], stop="tool_use")  # fmt: skip
    response = response_from(data, request("tools"), request_body(request("tools")), 0.5)
    assert json.loads(response.text or "") == {"sentiment": "negative"}
    assert (response.finish_reason, response.tool_calls) == ("stop", ())


@pytest.mark.parametrize(
    ("stop", "finish"),
    [("max_tokens", "length"), ("refusal", "refusal"), ("stop_sequence", "stop"),
     ("tool_use", "tool_calls")],
)  # fmt: skip
def test_stop_reasons(stop: str, finish: str) -> None:
    content = [{"type": "text", "text": "…"}]
    if stop == "tool_use":
        content.append({"type": "tool_use", "id": "t", "name": "lookup_order", "input": {}})
    response = response_from(message(content, stop), request(), request_body(request()), 0.5)
    assert response.finish_reason == finish
    assert (response.refusal is not None) == (finish == "refusal")
    if stop == "tool_use":
        assert response.tool_calls == (ToolCall("t", "lookup_order", "{}"),)


def test_no_usage_is_estimated() -> None:
    data = {**message([{"type": "text", "text": "12345678"}]), "usage": None}
    response = response_from(data, request(), request_body(request()), 0.5)
    assert (response.usage.output_tokens, response.usage.reported) == (2, False)
    assert response.usage.input_tokens > 0


# --- the package --------------------------------------------------------------------------


def test_without_the_package_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)  # what an import sees when it is absent
    with pytest.raises(ProviderError) as info:
        Anthropic(ProviderConfig("claude", "anthropic"))
    assert INSTALL_HINT in info.value.message
    assert not info.value.retryable


# --- over HTTP ----------------------------------------------------------------------------


class Canned:
    """A Messages endpoint on the loopback that answers what a test queues."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, dict[str, str], bytes]] = []
        self.bodies: list[dict[str, Any]] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                canned.bodies.append(json.loads(self.rfile.read(length)))
                status, headers, body = canned.replies.pop(0)
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = Canned()
    thread = threading.Thread(target=server.http.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.http.shutdown()
    server.http.server_close()


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def test_a_whole_answer_over_http(canned: Canned) -> None:
    answer = {"type": "tool_use", "id": "t", "name": OUTPUT_TOOL, "input": {"sentiment": "ok"}}
    data = message([answer], stop="tool_use")
    canned.replies.append((200, {"Content-Type": "application/json"}, json.dumps(data).encode()))
    provider = Anthropic(ProviderConfig("claude", "anthropic", base_url=canned.url), environ={})
    response = provider.complete(request("tools"))
    assert (response.text, response.finish_reason) == ('{"sentiment": "ok"}', "stop")
    assert canned.bodies[0]["tool_choice"] == {"type": "tool", "name": OUTPUT_TOOL}


def test_a_streamed_answer_over_http(canned: Canned) -> None:
    start = {**message([], stop=None), "usage": {"input_tokens": 9, "output_tokens": 1}}  # type: ignore[arg-type]
    events = sse(
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "Ship"}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "ped."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 3}},
        {"type": "message_stop"},
    )  # fmt: skip
    canned.replies.append((200, {"Content-Type": "text/event-stream"}, events))
    provider = Anthropic(ProviderConfig("claude", "anthropic", base_url=canned.url), environ={})
    got: list[str] = []
    response = provider.complete(request(schema=None, stream=True), got.append)
    assert got == ["Ship", "ped."]
    assert response.text == "Shipped."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (9, 3)


def test_a_429_over_http(canned: Canned) -> None:
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    canned.replies.append((429, {"Content-Type": "application/json", "retry-after": "4"},
                           json.dumps(error).encode()))  # fmt: skip
    provider = Anthropic(ProviderConfig("claude", "anthropic", base_url=canned.url), environ={})
    with pytest.raises(ProviderError) as info:
        provider.complete(request())
    assert (info.value.retryable, info.value.retry_after, info.value.status) == (True, 4.0, 429)
    assert info.value.message == "provider 'claude' answered HTTP 429 (rate limited): slow down"


def test_a_streamed_structured_answer_gives_the_json_pieces(canned: Canned) -> None:
    start = {**message([], stop=None), "usage": {"input_tokens": 9, "output_tokens": 1}}  # type: ignore[arg-type]
    block = {"type": "tool_use", "id": "toolu_9", "name": OUTPUT_TOOL, "input": {}}
    events = sse(
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": block},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": '{"sentiment": '}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": '"negative"}'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 6}},
        {"type": "message_stop"},
    )  # fmt: skip
    canned.replies.append((200, {"Content-Type": "text/event-stream"}, events))
    provider = Anthropic(ProviderConfig("claude", "anthropic", base_url=canned.url), environ={})
    got: list[str] = []
    response = provider.complete(request("tools", stream=True), got.append)
    assert "".join(got) == '{"sentiment": "negative"}'
    assert json.loads(response.text or "") == {"sentiment": "negative"}
    assert (response.finish_reason, response.tool_calls) == ("stop", ())

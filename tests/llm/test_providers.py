"""The OpenAI-compatible provider against keel's stub server, over real HTTP: every kind
of reply, whole and streamed, comes back as the right ``ModelResponse`` or
``ProviderError``."""

from __future__ import annotations

import json
import socket
import time
from email.utils import formatdate
from typing import Any

import pytest

from keel.llm.config import ProviderConfig
from keel.llm.providers.keys import PLACEHOLDER_KEY
from keel.llm.providers.openai_compatible import OpenAICompatible
from keel.llm.providers.structured import OUTPUT_TOOL, SCHEMA_LEAD
from keel.llm.stub_replies import pieces
from keel.llm.stub_server import (
    HttpError,
    Json,
    Malformed,
    Raw,
    Refusal,
    StubServer,
    StubUsage,
    Text,
    ToolCalls,
    Truncated,
)
from keel.llm.types import (
    Message,
    ModelRequest,
    ModelResponse,
    OutputMode,
    ProviderError,
    ToolCall,
    ToolSpec,
)

SCHEMA: dict[str, Any] = {
    "title": "Ticket triage",
    "type": "object",
    "properties": {"sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]}},
    "required": ["sentiment"],
    "additionalProperties": False,
}
QUESTION = (Message("system", "You sort tickets."), Message("user", "The parcel came broken."))
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])


def ask(
    provider: OpenAICompatible,
    *,
    stream: bool = False,
    mode: OutputMode = "text",
    schema: dict[str, Any] | None = None,
    tools: tuple[ToolSpec, ...] = (),
    messages: tuple[Message, ...] = QUESTION,
    got: list[str] | None = None,
) -> ModelResponse:
    request = ModelRequest("stub-small", messages, max_tokens=64, output_schema=schema,
                           output_mode=mode, tools=tools, stream=stream)  # fmt: skip
    return provider.complete(request, got.append if got is not None else None)


def failure(provider: OpenAICompatible, *, stream: bool = False) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        ask(provider, stream=stream)
    return info.value


def chars(body: dict[str, Any]) -> int:
    return sum(len(message["content"] or "") for message in body["messages"])


# --- answers -------------------------------------------------------------------------


@STREAM
def test_text_answer(provider: OpenAICompatible, stub: StubServer, stream: bool) -> None:
    stub.script(Text("Sorry to hear that.", usage=StubUsage(11, 5, cached_tokens=3,
                                                             reasoning_tokens=2)))  # fmt: skip
    response = ask(provider, stream=stream)
    assert response.text == "Sorry to hear that."
    assert response.finish_reason == "stop"
    assert response.tool_calls == ()
    assert response.model == "stub-small"
    assert response.response_id == "chatcmpl-stub-1"
    assert response.latency > 0
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens) == (11, 5)
    assert (usage.cached_input_tokens, usage.reasoning_tokens, usage.reported) == (3, 2, True)


def test_the_request_carries_the_settings(provider: OpenAICompatible, stub: StubServer) -> None:
    request = ModelRequest("stub-large", QUESTION, max_tokens=77, temperature=0.2)
    provider.complete(request)
    (body,) = stub.requests
    assert body["model"] == "stub-large"
    assert body["max_tokens"] == 77
    assert body["temperature"] == 0.2
    assert body["messages"] == [
        {"role": "system", "content": "You sort tickets."},
        {"role": "user", "content": "The parcel came broken."},
    ]
    assert "stream" not in body
    assert "response_format" not in body
    assert "tools" not in body


def test_streaming_gives_each_piece_and_the_usage_of_the_last_chunk(
    provider: OpenAICompatible, stub: StubServer
) -> None:
    text = "We will send a new one today, and refund the shipping."
    stub.script(Text(text, usage=StubUsage(20, 13)))
    got: list[str] = []
    response = ask(provider, stream=True, got=got)
    assert got == pieces(text)
    assert len(got) > 1
    assert "".join(got) == response.text == text
    assert (response.usage.input_tokens, response.usage.output_tokens) == (20, 13)
    assert response.usage.reported
    assert stub.requests[0]["stream"] is True
    assert stub.requests[0]["stream_options"] == {"include_usage": True}


@STREAM
def test_usage_computed_by_the_stub(
    provider: OpenAICompatible, stub: StubServer, stream: bool
) -> None:
    stub.script(Text("An answer of some length."))
    response = ask(provider, stream=stream)
    assert response.usage.input_tokens == chars(stub.requests[0]) // 4
    assert response.usage.output_tokens == len("An answer of some length.") // 4
    assert response.usage.reported


@STREAM
def test_missing_usage_is_estimated_and_marked(
    provider: OpenAICompatible, stub: StubServer, stream: bool
) -> None:
    stub.script(Text("No usage comes with this answer.", usage=None))
    response = ask(provider, stream=stream)
    assert not response.usage.reported
    assert response.usage.input_tokens == -(-chars(stub.requests[0]) // 4)
    assert response.usage.output_tokens == -(-len("No usage comes with this answer.") // 4)


@STREAM
def test_truncated_answer_finishes_with_length(
    provider: OpenAICompatible, stub: StubServer, stream: bool
) -> None:
    stub.script(Truncated('{"sentiment": "nega'))
    response = ask(provider, stream=stream, mode="json_schema", schema=SCHEMA)
    assert response.finish_reason == "length"
    assert response.text == '{"sentiment": "nega'


@STREAM
def test_refusal(provider: OpenAICompatible, stub: StubServer, stream: bool) -> None:
    stub.script(Refusal("I can't help with that request."))
    response = ask(provider, stream=stream, mode="json_schema", schema=SCHEMA)
    assert response.finish_reason == "refusal"
    assert response.refusal == "I can't help with that request."
    assert response.text is None


@STREAM
def test_content_filter_is_a_refusal(
    provider: OpenAICompatible, stub: StubServer, stream: bool
) -> None:
    stub.script(Text("", finish_reason="content_filter"))
    assert ask(provider, stream=stream).finish_reason == "refusal"


@STREAM
def test_malformed_json_comes_back_as_text(
    provider: OpenAICompatible, stub: StubServer, stream: bool
) -> None:
    stub.script(Malformed('{"sentiment": "negative"'))
    response = ask(provider, stream=stream, mode="json_object", schema=SCHEMA)
    assert response.text == '{"sentiment": "negative"'
    assert response.finish_reason == "stop"


# --- structured output, per mode ------------------------------------------------------


@STREAM
@pytest.mark.parametrize("mode", ["json_schema", "json_object", "tools", "prompted"])
def test_structured_output(
    provider: OpenAICompatible, stub: StubServer, mode: OutputMode, stream: bool
) -> None:
    stub.script(Json({"sentiment": "negative"}))
    got: list[str] = []
    response = ask(provider, stream=stream, mode=mode, schema=SCHEMA, got=got)
    assert response.text is not None
    assert json.loads(response.text) == {"sentiment": "negative"}
    assert response.finish_reason == "stop"
    assert response.tool_calls == ()
    if stream:
        assert "".join(got) == response.text
    (body,) = stub.requests
    system = body["messages"][0]["content"]
    if mode == "json_schema":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "Ticket_triage", "schema": SCHEMA, "strict": True},
        }
    if mode == "json_object":
        assert body["response_format"] == {"type": "json_object", "schema": SCHEMA}
    if mode == "tools":
        assert body["tools"] == [{"type": "function", "function": {
            "name": OUTPUT_TOOL, "description": body["tools"][0]["function"]["description"],
            "parameters": SCHEMA}}]  # fmt: skip
        assert body["tool_choice"] == {"type": "function", "function": {"name": OUTPUT_TOOL}}
    else:
        assert "tools" not in body
        assert "tool_choice" not in body
    if mode in ("json_object", "prompted"):
        assert system.startswith("You sort tickets.\n\n" + SCHEMA_LEAD)
        assert json.loads(system.split(SCHEMA_LEAD)[1]) == SCHEMA
    else:
        assert system == "You sort tickets."
    if mode in ("tools", "prompted"):
        assert "response_format" not in body


def test_prompted_mode_adds_a_system_message_when_there_is_none(
    provider: OpenAICompatible, stub: StubServer
) -> None:
    ask(provider, mode="prompted", schema=SCHEMA, messages=(Message("user", "Hi"),))
    first = stub.requests[0]["messages"][0]
    assert first["role"] == "system"
    assert first["content"].startswith(SCHEMA_LEAD)


def test_text_mode_ignores_a_schema(provider: OpenAICompatible, stub: StubServer) -> None:
    ask(provider, mode="text", schema=SCHEMA)
    (body,) = stub.requests
    assert "response_format" not in body
    assert SCHEMA_LEAD not in json.dumps(body)


# --- tools ------------------------------------------------------------------------------

LOOKUP = ToolSpec("lookup_order", "Find an order by its number.",
                  {"type": "object", "properties": {"order": {"type": "string"}}})  # fmt: skip


@STREAM
def test_tool_calls_are_parsed(provider: OpenAICompatible, stub: StubServer, stream: bool) -> None:
    stub.script(ToolCalls((("lookup_order", {"order": "A-17"}), ("lookup_order", '{"order": '))))
    got: list[str] = []
    response = ask(provider, stream=stream, tools=(LOOKUP,), got=got)
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == (
        ToolCall("call_1_0", "lookup_order", '{"order": "A-17"}'),
        ToolCall("call_1_1", "lookup_order", '{"order": '),  # as written, not repaired
    )
    assert got == []
    (body,) = stub.requests
    assert body["tools"] == [{"type": "function", "function": {
        "name": "lookup_order", "description": LOOKUP.description,
        "parameters": LOOKUP.parameters}}]  # fmt: skip
    assert "tool_choice" not in body


def test_a_conversation_with_tool_results_is_sent_as_openai_writes_it(
    provider: OpenAICompatible, stub: StubServer
) -> None:
    call = ToolCall("call_9", "lookup_order", '{"order": "A-17"}')
    messages = (*QUESTION, Message("assistant", None, tool_calls=(call,)),
                Message("tool", '{"status": "shipped"}', tool_call_id="call_9"))  # fmt: skip
    ask(provider, tools=(LOOKUP,), messages=messages)
    sent = stub.requests[0]["messages"]
    assert sent[2] == {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_9", "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"order": "A-17"}'}}]}  # fmt: skip
    assert sent[3] == {"role": "tool", "content": '{"status": "shipped"}', "tool_call_id": "call_9"}


def test_tools_mode_with_tools_lets_the_model_choose(
    provider: OpenAICompatible, stub: StubServer
) -> None:
    stub.script(ToolCalls((("lookup_order", {"order": "A-17"}),)))
    response = ask(provider, mode="tools", schema=SCHEMA, tools=(LOOKUP,))
    assert [tool["function"]["name"] for tool in stub.requests[0]["tools"]] == [
        "lookup_order", OUTPUT_TOOL]  # fmt: skip
    assert stub.requests[0]["tool_choice"] == "required"
    assert response.finish_reason == "tool_calls"
    assert response.text is None
    stub.script(ToolCalls(((OUTPUT_TOOL, {"sentiment": "neutral"}),)))
    response = ask(provider, mode="tools", schema=SCHEMA, tools=(LOOKUP,))
    assert (response.text, response.finish_reason, response.tool_calls) == (
        '{"sentiment": "neutral"}',
        "stop",
        (),
    )


# --- failures ---------------------------------------------------------------------------


@STREAM
def test_429_is_retryable_after_the_time_asked(
    provider: OpenAICompatible, stub: StubServer, stream: bool
) -> None:
    stub.script(HttpError(status=429, message="slow down", retry_after="7"))
    error = failure(provider, stream=stream)
    assert (error.retryable, error.retry_after, error.status) == (True, 7.0, 429)
    assert "'stub'" in error.message
    assert "429" in error.message
    assert "slow down" in error.message


def test_retry_after_as_a_date_and_in_milliseconds(
    provider: OpenAICompatible, stub: StubServer
) -> None:
    in_an_hour = formatdate(time.time() + 3600, usegmt=True)
    stub.script(HttpError(status=429, retry_after=in_an_hour),
                HttpError(status=429, retry_after_ms=1500),
                HttpError(status=429, retry_after=formatdate(0, usegmt=True)))  # fmt: skip
    date = failure(provider)
    assert date.retry_after is not None
    assert 3000 < date.retry_after <= 3600
    assert failure(provider).retry_after == 1.5
    assert failure(provider).retry_after == 0  # a date gone by: now


@pytest.mark.parametrize("status", [500, 502, 503, 529, 408])
def test_server_errors_are_retryable(
    provider: OpenAICompatible, stub: StubServer, status: int
) -> None:
    stub.script(HttpError(status=status))
    error = failure(provider)
    assert (error.retryable, error.status, error.retry_after) == (True, status, None)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retryable_and_never_quote_the_key(
    stub: StubServer, status: int
) -> None:
    key = "sk-proj-SECRETSECRET1234567890"
    config = ProviderConfig("stub", base_url=stub.url, api_key_env="STUB_KEY")
    provider = OpenAICompatible(config, environ={"STUB_KEY": key})
    stub.script(HttpError(status=status, message=f"Incorrect API key provided: {key}.",
                          retry_after="3"))  # fmt: skip
    error = failure(provider)
    assert (error.retryable, error.retry_after, error.status) == (False, None, status)
    assert f"provider 'stub' answered HTTP {status}" in error.message
    assert "SECRET" not in error.message
    assert "SECRET" not in repr(error)
    assert stub.headers[0]["authorization"] == f"Bearer {key}"


def test_a_masked_key_quoted_by_the_provider_is_removed(
    provider: OpenAICompatible, stub: StubServer
) -> None:
    stub.script(HttpError(status=401, message="Incorrect API key provided: sk-abc12*******wxyz."))
    assert "sk-abc" not in failure(provider).message


@STREAM
@pytest.mark.parametrize(
    "raw",
    [Raw(body="<html>Welcome to nginx</html>"),
     Raw(body="{not json", content_type="application/json"),
     Raw(body="[]", content_type="application/json")],
)  # fmt: skip
def test_an_endpoint_that_is_not_a_chat_api(
    provider: OpenAICompatible, stub: StubServer, raw: Raw, stream: bool
) -> None:
    stub.script(raw)
    error = failure(provider, stream=stream)
    assert not error.retryable
    assert "provider 'stub' answered with something that is not a chat completion" in str(error)


def test_a_timeout_is_retryable(stub: StubServer) -> None:
    provider = OpenAICompatible(ProviderConfig("stub", base_url=stub.url, timeout=0.5), {})
    stub.script(Text("late", delay=60))  # cut short when the stub closes
    error = failure(provider)
    assert error.retryable
    assert "did not answer within 0.5 s" in error.message


def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as sock:  # a port nothing listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = ProviderConfig("down", base_url=f"http://127.0.0.1:{port}/v1", timeout=5)
    with pytest.raises(ProviderError) as info:
        OpenAICompatible(config, {}).complete(ModelRequest("m", QUESTION, max_tokens=5))
    assert info.value.retryable
    assert "provider 'down' could not be reached (127.0.0.1:" in info.value.message


# --- keys -------------------------------------------------------------------------------


def test_loopback_without_a_key_sends_a_placeholder(
    provider: OpenAICompatible, stub: StubServer
) -> None:
    ask(provider)
    assert stub.headers[0]["authorization"] == f"Bearer {PLACEHOLDER_KEY}"


@pytest.mark.parametrize(
    ("config", "variable"),
    [
        (ProviderConfig("openai"), "OPENAI_API_KEY"),
        (ProviderConfig("remote", base_url="https://llm.example.com/v1", api_key_env="REMOTE_KEY"),
         "REMOTE_KEY"),
        (ProviderConfig("remote", base_url="https://llm.example.com/v1"), "api_key_env"),
    ],
)  # fmt: skip
def test_a_missing_key_elsewhere_names_what_to_set(config: ProviderConfig, variable: str) -> None:
    with pytest.raises(ProviderError) as info:
        OpenAICompatible(config, {}).complete(ModelRequest("m", QUESTION, max_tokens=5))
    assert not info.value.retryable
    assert variable in info.value.message
    assert f"provider '{config.name}'" in info.value.message


def test_openai_base_url_from_the_environment(stub: StubServer) -> None:
    """Provider ``openai`` without config goes where ``OPENAI_BASE_URL`` says, as the
    SDK would: on the loopback it needs no key."""
    provider = OpenAICompatible(ProviderConfig("openai"), {"OPENAI_BASE_URL": stub.url})
    assert ask(provider).text is not None
    assert stub.headers[0]["authorization"] == f"Bearer {PLACEHOLDER_KEY}"
    # the OpenAI API refuses max_tokens for its reasoning models; other servers want it
    assert "max_tokens" in stub.requests[0]

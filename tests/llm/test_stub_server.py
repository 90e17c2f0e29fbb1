"""keel's OpenAI-compatible stub server: scripted replies in order, the rule-based
answers when none is left (JSON that fits the schema asked for), its routes, its
command line."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any, Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from keel.llm.config import ProviderConfig
from keel.llm.providers.openai_compatible import OpenAICompatible
from keel.llm.stub_replies import Reply
from keel.llm.stub_server import Json, StubServer, Text, rule_based
from keel.llm.types import Message, ModelRequest, OutputMode
from tests.processes import stop_workers


class Item(BaseModel):
    sku: str
    quantity: int = Field(ge=2, le=5)


class Triage(BaseModel):
    sentiment: Literal["positive", "neutral", "negative"]
    priority: str = Field(json_schema_extra={"enum": ["low", "high", "urgent"]})
    summary: str = Field(max_length=20)
    score: float = Field(gt=0, lt=1)
    items: list[Item] = Field(min_length=2)
    refund: bool
    note: str | None
    opened: str = Field(json_schema_extra={"format": "date"})


SCHEMA = Triage.model_json_schema()


def user(text: str) -> dict[str, Any]:
    response_format = {"type": "json_schema", "json_schema": {"schema": SCHEMA}}
    messages = [{"role": "user", "content": text}]
    return {"model": "stub-small", "messages": messages, "response_format": response_format}


def answer(request: dict[str, Any]) -> Any:
    reply = rule_based(request)
    assert isinstance(reply, Json)
    return reply.value


@pytest.mark.parametrize(
    ("text", "sentiment"),
    [
        ("My parcel arrived BROKEN and I want a refund!", "negative"),
        ("Thanks, I love it", "positive"),
        ("Where is my order?", "neutral"),
    ],
)
def test_a_sentiment_follows_the_words_of_the_question(text: str, sentiment: str) -> None:
    value = answer(user(text))
    jsonschema.validate(value, SCHEMA)
    assert Triage.model_validate(value).sentiment == sentiment


def test_every_answer_fits_the_schema() -> None:
    value = answer(user("This is urgent: two items missing."))
    jsonschema.validate(value, SCHEMA)
    triage = Triage.model_validate(value)
    assert triage.priority == "urgent"  # an enum value the question names
    assert triage.summary == "This is urgent: two i"[:20]
    assert len(triage.items) == 2
    assert triage.items[0].quantity == 2
    assert triage.opened == "2024-01-01"


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "tools", "prompted"])
def test_the_schema_is_found_in_every_output_mode(stub: StubServer, mode: OutputMode) -> None:
    provider = OpenAICompatible(ProviderConfig("stub", base_url=stub.url), {})
    request = ModelRequest("stub-small", (Message("user", "angry customer"),), max_tokens=200,
                           output_schema=SCHEMA, output_mode=mode)  # fmt: skip
    text = provider.complete(request).text
    assert text is not None
    assert Triage.model_validate_json(text).sentiment == "negative"


def test_without_a_schema_the_stub_echoes() -> None:
    request = {"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "Hi"}]}
    assert rule_based(request) == Text("stub reply to: Hi")
    assert rule_based({"messages": []}) == Text("stub reply")


def test_scripted_replies_come_first_in_order(stub: StubServer) -> None:
    stub.script(Text("one"), Text("two"))
    client = openai.OpenAI(base_url=stub.url, api_key="k", max_retries=0)
    texts = [
        client.chat.completions.create(
            model="stub-small", messages=[{"role": "user", "content": f"q{n}"}]
        )
        .choices[0]
        .message.content
        for n in range(3)
    ]
    assert texts == ["one", "two", "stub reply to: q2"]
    assert [body["messages"][0]["content"] for body in stub.requests] == ["q0", "q1", "q2"]


def test_a_responder_of_ones_own(stub: StubServer) -> None:
    def shout(request: dict[str, Any]) -> Reply:
        return Text(request["messages"][-1]["content"].upper())

    with StubServer(shout) as own:
        client = openai.OpenAI(base_url=own.url, api_key="k", max_retries=0)
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hey"}]
        )
        assert reply.choices[0].message.content == "HEY"


def test_models_are_listed(stub: StubServer) -> None:
    client = openai.OpenAI(base_url=stub.url, api_key="k", max_retries=0)
    assert [model.id for model in client.models.list()] == ["stub-small", "stub-large"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [("/v1/chat/completions", b"not json", 400), ("/v1/chat/completions", b"[]", 400),
     ("/v1/embeddings", b"{}", 404)],
)  # fmt: skip
def test_bad_requests(stub: StubServer, path: str, body: bytes, status: int) -> None:
    url = stub.url.removesuffix("/v1") + path
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url, body, method="POST"), timeout=30)
    assert info.value.code == status
    assert "message" in json.loads(info.value.read())["error"]
    assert stub.requests == []


def test_the_command_line_serves_rule_based_answers() -> None:
    command = [sys.executable, "-m", "keel.llm.stub_server", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            assert line.startswith("keel LLM stub serving http://127.0.0.1:")
            client = openai.OpenAI(base_url=line.split()[4], api_key="k", max_retries=0)
            schema: Any = {"type": "object", "required": ["sentiment"], "properties": {
                "sentiment": {"enum": ["positive", "neutral", "negative"]}}}  # fmt: skip
            reply = client.chat.completions.create(
                model="stub-small",
                messages=[{"role": "user", "content": "terrible service"}],
                extra_body={"response_format": {"type": "json_object", "schema": schema}},
            )
            assert json.loads(reply.choices[0].message.content or "") == {"sentiment": "negative"}
        finally:
            stop_workers([proc])


def test_the_command_line_says_when_the_port_is_taken(stub: StubServer) -> None:
    port = stub.url.split(":")[2].split("/")[0]
    done = subprocess.run([sys.executable, "-m", "keel.llm.stub_server", "--port", port],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr

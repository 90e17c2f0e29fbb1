"""The real local model answers what keel's OpenAI-compatible provider will send it:
schema-constrained JSON with usage counts, and a truncated answer marked as such. Opt-in:
``KEEL_REAL_LLM=1`` (see ``tests/llm/real_model.py``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.llm.real_model import RealModel
from tests.llm.real_model import real_model as real_model  # the fixture, for pytest

# loading the model and the first answer take seconds, far more on a loaded machine
pytestmark = [pytest.mark.real_llm, pytest.mark.timeout(300)]

TICKET_SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["sentiment", "urgent"],
}
#: how keel asks llama.cpp for JSON that fits a schema (output mode ``json_object``): the SDK's
#: type for this format has no ``schema`` key, llama.cpp reads it
JSON_OBJECT: Any = {"type": "json_object", "schema": TICKET_SCHEMA}

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You classify support tickets. Answer in JSON."},
    {"role": "user", "content": "Ticket: my order arrived broken and I need a refund today!"},
]


def client(model: RealModel) -> OpenAI:
    # the server checks no key, but the SDK wants one; no retries: a failure shows at once
    return OpenAI(base_url=model.base_url, api_key="unused", max_retries=0, timeout=120)


def test_json_object_with_a_schema_gives_json_that_fits_and_counts_tokens(
    real_model: RealModel,
) -> None:
    answer = client(real_model).chat.completions.create(
        model=real_model.model,
        messages=MESSAGES,
        response_format=JSON_OBJECT,
        max_tokens=100,
        temperature=0,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "stop", choice
    fields = json.loads(choice.message.content or "")
    assert fields.keys() == {"sentiment", "urgent"}, fields
    assert fields["sentiment"] in {"positive", "neutral", "negative"}
    assert isinstance(fields["urgent"], bool)
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.completion_tokens > 0


def test_an_answer_cut_by_max_tokens_says_length(real_model: RealModel) -> None:
    answer = client(real_model).chat.completions.create(
        model=real_model.model,
        messages=MESSAGES,
        response_format=JSON_OBJECT,
        max_tokens=3,
        temperature=0,
    )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 3

"""``keel.llm.step`` in a Python workflow: values passed by name land in the prompt as
they are, whatever text they hold, and ``for_each`` asks once per item."""

from __future__ import annotations

import json
from typing import Any

import pytest

import keel
import keel.llm
from keel.errors import TracingError
from keel.llm.prompts import filled
from tests.llm.running import LlmWorld

ODD_VALUES = [
    "hi }} there",
    {"a": {"b": {"c": "}"}}},
    "x ${{ input.secret }}",
    ["}", "}}"],
    5,
]


def prompt_for(value: Any) -> str:
    @keel.workflow
    def flow(text: str) -> Any:
        return keel.llm.step("Say ${{ g }} now", values={"g": value}, model="m", max_tokens=9)

    (node,) = flow.spec.nodes
    return str(node.prompt)


@pytest.mark.parametrize("value", ODD_VALUES)
def test_a_value_with_braces_fills_in_as_itself(value: Any) -> None:
    shown = value if isinstance(value, str) else json.dumps(value)
    assert filled(prompt_for(value), {}) == f"Say {shown} now"


def test_a_value_from_the_run_stays_an_expression() -> None:
    @keel.workflow
    def flow(ticket: dict[str, str]) -> Any:
        return keel.llm.step(
            "Classify: ${{ t }}", values={"t": ticket["text"]}, model="m", max_tokens=9
        )

    (node,) = flow.spec.nodes
    assert node.prompt == 'Classify: ${{ input.ticket["text"] }}'


def test_a_prompt_that_is_not_text_is_refused() -> None:
    with pytest.raises(TracingError, match="prompt is text"):

        @keel.workflow
        def flow(text: str) -> Any:
            return keel.llm.step(text, model="m", max_tokens=9)  # type: ignore[arg-type]


@keel.workflow
def sentiments(tickets: list[str], channel: str) -> Any:
    return keel.llm.step(
        "Ticket from ${{ channel }}: ${{ item }} ${{ extra }}", for_each=tickets, max_items=5,
        values={"channel": channel, "extra": {"tags": {"vip": True}}}, id="classify",
        model="stub-small", provider="local", max_tokens=40,
        output={"type": "object", "properties": {"sentiment": {"type": "string",
                "enum": ["positive", "negative", "neutral"]}}, "required": ["sentiment"]},
    )  # fmt: skip


def test_a_python_map_of_llm_steps_runs(llm_world: LlmWorld) -> None:
    run = llm_world.run(sentiments.spec, {"tickets": ["broken", "great"], "channel": "mail"})

    assert run.status == "succeeded", llm_world.errors(run.id, "classify")
    assert run.output == {"result": [{"sentiment": "negative"}, {"sentiment": "positive"}]}
    prompts = sorted(r["messages"][-1]["content"] for r in llm_world.stub.requests)
    assert prompts == [
        'Ticket from mail: broken {"tags": {"vip": true}}',
        'Ticket from mail: great {"tags": {"vip": true}}',
    ]

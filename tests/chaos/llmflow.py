"""Workflows with model steps for the LLM kill tests (``test_llm_kill``): the provider
``local`` is keel's stub server, named by ``KEEL_LLM_LOCAL_BASE_URL``.

``triage`` asks once and hands the answer to a task, so the run is still going after the
model step's outcome is committed; ``triage_each`` asks once per ticket (a map), one
item at a time so that a kill lands on a known item; ``investigate`` is an agent with a
tool that writes its idempotency key to the file ``KEEL_TEST_KEYS`` names each time it
runs.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel

import keel
import keel.llm


class Verdict(BaseModel):
    sentiment: Literal["negative", "neutral", "positive"]


@keel.task
def route(verdict: dict[str, str]) -> str:
    return f"queue-{verdict['sentiment']}"


@keel.workflow
def triage(text: str = "my parcel never came, I want a refund") -> dict[str, object]:
    verdict = keel.llm.step("Classify this ticket: ${{ text }}", values={"text": text},
                            model="stub-small", provider="local", max_tokens=40,
                            output=Verdict)  # fmt: skip
    return {"verdict": verdict, "queue": route(verdict)}


TICKETS = ["thanks, great service", "the app is broken", "where is my order"]


@keel.workflow
def triage_each(texts: list[str] = TICKETS) -> dict[str, object]:
    verdicts = keel.llm.step("Classify this ticket: ${{ item }}", for_each=texts,
                             max_items=len(TICKETS), max_parallel=1, model="stub-small",
                             provider="local", max_tokens=40, output=Verdict)  # fmt: skip
    return {"verdicts": verdicts}


@keel.task
def lookup(order: str) -> dict[str, str]:
    """Where an order is."""
    with open(os.environ["KEEL_TEST_KEYS"], "a", encoding="utf-8") as keys:
        keys.write(keel.context().idempotency_key + "\n")
    return {"order": order, "status": "lost in transit"}


@keel.workflow
def investigate(order: str = "A-17") -> str:
    answer: str = keel.llm.agent(
        "What happened to order ${{ order }}?",
        values={"order": order},
        tools=[lookup],
        model="stub-small",
        provider="local",
        max_tokens=40,
        max_turns=3,
        max_tool_calls=2,
        max_cost=1.0,
    )
    return answer

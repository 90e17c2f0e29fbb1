"""The ticket-routing workflow, run in memory and offline: the model step (``classify``)
is replaced by a stub that answers what a model would, so these tests need no model, no
server and no key, and each test picks the answer it needs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tickets import tickets

from keel.testing import run

SAMPLE = json.loads((Path(__file__).parents[1] / "input.json").read_text(encoding="utf-8"))


def model_answering(topic: str, urgency: str) -> Callable[..., dict[str, str]]:
    """A stand-in for the model: the answer ``Triage`` asks for."""

    def answer(*args: object, **kwargs: object) -> dict[str, str]:
        return {"topic": topic, "urgency": urgency, "summary": "Charged twice this month."}

    return answer


def test_a_billing_ticket_goes_to_the_billing_team() -> None:
    result = run(tickets, input=SAMPLE, stubs={"classify": model_answering("billing", "normal")})

    assert result.status == "succeeded", result.error
    assert result.output["routed"] == {
        "ticket": "T-1042", "queue": "billing-team", "summary": "Charged twice this month.",
    }  # fmt: skip
    assert result.node("open_priority_case").status == "skipped"


def test_an_unknown_topic_goes_to_the_general_queue() -> None:
    result = run(tickets, input=SAMPLE, stubs={"classify": model_answering("other", "low")})

    assert result.status == "succeeded", result.error
    assert result.output["routed"]["queue"] == "general"


def test_an_urgent_ticket_also_opens_a_priority_case() -> None:
    result = run(tickets, input=SAMPLE, stubs={"classify": model_answering("delivery", "high")})

    assert result.status == "succeeded", result.error
    assert result.output["routed"]["queue"] == "logistics-team"
    assert result.output["case"] == "CASE-T-1042: call Dana Reyes back today"

"""Ticket routing: a model classifies a support ticket (its answer must fit ``Triage``:
keel checks it and asks again with the error when it does not), the ticket goes to the
queue of the team for its topic, and an urgent one also opens a priority case.

Every model request is recorded (tokens, cost, finish reason) before keel acts on it, so
a resumed run never pays twice: ``keel calls RUN`` lists them.

The model is ``stub-small`` on provider ``local`` (see keel.toml): keel's stub server, a
rule-based stand-in for a model, so this runs offline:

    python -m keel.llm.stub_server --port 8089 &
    keel run tickets.py --input @input.json

For a real model, change ``PROVIDER`` and ``MODEL`` (e.g. "openai", "gpt-4o-mini" with
OPENAI_API_KEY set), or point ``[llm.providers.local]`` of keel.toml at llama.cpp.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

import keel

PROVIDER = "local"
MODEL = "stub-small"

#: the queue of each topic's team; anything else goes to the general queue
QUEUES = {"billing": "billing-team", "delivery": "logistics-team", "account": "accounts-team"}


class Ticket(BaseModel):
    id: str
    customer: str
    text: str


class Triage(BaseModel):
    """What the model must answer; an answer that does not fit is asked again."""

    topic: Literal["billing", "delivery", "account", "other"]
    urgency: Literal["low", "normal", "high"]
    summary: str = Field(max_length=200, description="the ticket in one sentence")


TRIAGE_SYSTEM = (
    "You triage customer support tickets. Answer with the ticket's topic (billing, "
    "delivery, account or other), its urgency (low, normal or high) and a one-sentence "
    "summary."
)


@keel.task(retries=3)
def route(ticket_id: str, topic: str, summary: str) -> dict[str, str]:
    """Put the ticket in its team's queue (your ticketing system's API in real life)."""
    queue = QUEUES.get(topic, "general")
    return {"ticket": ticket_id, "queue": queue, "summary": summary}


@keel.task
def open_priority_case(ticket_id: str, customer: str) -> str:
    """Open a priority case for the support lead."""
    return f"CASE-{ticket_id}: call {customer} back today"


@keel.workflow
def tickets(ticket: Ticket) -> dict[str, object]:
    """Classify a support ticket with a model and route it to a team's queue."""
    triage = keel.llm.step(
        "Ticket from ${{ customer }}: ${{ text }}",
        system=TRIAGE_SYSTEM,
        values={"customer": ticket.customer, "text": ticket.text},
        output=Triage,
        model=MODEL,
        provider=PROVIDER,
        max_tokens=200,
        temperature=0.0,
        retries=3,  # a rate limit or a server error; a refusal is not retried
        id="classify",
    )
    routed = route(ticket.id, triage.topic, triage.summary)
    case = open_priority_case.options(when=triage.urgency == "high")(ticket.id, ticket.customer)
    return {"triage": triage, "routed": routed, "case": case}

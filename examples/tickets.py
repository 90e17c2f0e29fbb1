"""Support ticket: a model classifies it, one of three branches drafts a reply, a person
approves the draft, then it is sent.

``classify`` is a model step whose answer must fit ``Triage`` (keel validates it and
re-asks with the error when it does not). Its sentiment picks the branch: a negative
ticket gets an apology and a priority case, a neutral one a standard answer, a positive
one a thank-you. Every model request is recorded in the run's ledger (tokens, cost,
finish reason) before keel acts on it, so a resumed or replayed run never pays twice;
``llm_budget`` caps what one run may spend.

Offline, against keel's stub server (a rule-based stand-in for a model, real HTTP):

    python -m keel.llm.stub_server --port 8089 &
    export KEEL_LLM_LOCAL_BASE_URL=http://127.0.0.1:8089/v1
    keel run examples/tickets.py --input @examples/ticket.json
    keel approvals                              # from another shell: the draft to approve
    keel approve RUN approve_reply --by ann
    keel show RUN                               # the ledger: every request, tokens, cost

The model is ``stub-small`` on provider ``local`` unless ``KEEL_TICKETS_MODEL`` and
``KEEL_TICKETS_PROVIDER`` say otherwise (read when the file is loaded), e.g.
``KEEL_TICKETS_PROVIDER=openai KEEL_TICKETS_MODEL=gpt-4o-mini`` with ``OPENAI_API_KEY``
set, or a llama.cpp server:

    # keel.toml
    [llm.providers.local]
    base_url = "http://127.0.0.1:8080/v1"
    output_mode = "json_object"      # llama.cpp reads the schema beside json_object

    [llm.prices."stub-small"]        # the stub's models have no public price
    input = 1.0                      # dollars per million tokens
    output = 2.0
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, Field

import keel

MODEL = os.environ.get("KEEL_TICKETS_MODEL", "stub-small")
PROVIDER = os.environ.get("KEEL_TICKETS_PROVIDER", "local")


class Ticket(BaseModel):
    id: str
    customer: str
    text: str


class Triage(BaseModel):
    """What the model must answer; an answer that does not fit is asked again."""

    sentiment: Literal["positive", "neutral", "negative"]
    urgency: Literal["low", "normal", "high"]
    topic: str = Field(max_length=40, description="what the ticket is about, in a few words")


class ReplyReview(BaseModel):
    """What the approver may fill in: a corrected reply replaces the draft."""

    edited: str = ""


# The templates name the ticket's fields only: the stub reads the sentiment off the words
# of the request, so the instructions around the ticket stay neutral.
TRIAGE_SYSTEM = (
    "You triage customer support tickets. Read the ticket and answer with its sentiment "
    "(positive, neutral or negative), its urgency (low, normal or high) and its topic."
)
DRAFT_SYSTEM = "You write short replies to support tickets, signed 'The support team'."


@keel.task
def open_case(ticket_id: str, urgency: str, topic: str) -> str:
    """Open a priority case for the support lead (a ticketing API in real life)."""
    return f"CASE-{ticket_id}-{urgency.upper()}"


@keel.task
def pick_draft(apology: str | None, standard: str | None, thanks: str | None) -> str:
    """The draft of the branch that ran (the other two were skipped: None)."""
    drafts = [draft for draft in (apology, standard, thanks) if draft is not None]
    if len(drafts) != 1:
        raise ValueError(f"expected the draft of one branch, got {len(drafts)}")
    return drafts[0].strip()


@keel.task
def send_reply(ticket_id: str, customer: str, draft: str, review: ReplyReview) -> dict[str, str]:
    """Send the approved reply (here: log it, see ``keel logs RUN``, and return it)."""
    text = review.edited.strip() or draft
    keel.context().logger.info("to %s (ticket %s): %s", customer, ticket_id, text)
    return {"ticket": ticket_id, "to": customer, "reply": text}


def draft(what: str, ticket: Ticket, *, id: str, when: keel.Value) -> Any:
    """A reply drafted by the model, in the branch ``when`` picks."""
    return keel.llm.step(
        f"{what} Customer: ${{{{ customer }}}}. Ticket: ${{{{ text }}}}",
        system=DRAFT_SYSTEM,
        values={"customer": ticket.customer, "text": ticket.text},
        model=MODEL,
        provider=PROVIDER,
        max_tokens=300,
        temperature=0.3,
        stream=True,  # the words show in `keel logs RUN --follow` as they come
        retries=3,  # a 429 or 5xx only: a refusal or a truncated answer is not retried
        id=id,
        when=when,
    )


@keel.workflow(llm_budget=keel.LlmBudget(per_run=0.05, on_exceed="ask", assignees=["lead"]))
def tickets(ticket: Ticket) -> dict[str, object]:
    """Classify a support ticket, draft the reply its sentiment calls for, have a person
    approve it, send it."""
    triage = keel.llm.step(
        "Ticket from ${{ customer }}: ${{ text }}",
        system=TRIAGE_SYSTEM,
        values={"customer": ticket.customer, "text": ticket.text},
        output=Triage,
        model=MODEL,
        provider=PROVIDER,
        max_tokens=200,
        temperature=0.0,
        retries=3,
        id="classify",
    )
    apology = draft(
        "Apologise for the trouble and say a person follows up on it today.",
        ticket, id="apologise", when=triage.sentiment == "negative",
    )  # fmt: skip
    case = open_case.options(when=triage.sentiment == "negative")(
        ticket.id, triage.urgency, triage.topic
    )
    standard = draft(
        "Answer the question and say where to find more help.",
        ticket, id="answer", when=triage.sentiment == "neutral",
    )  # fmt: skip
    thanks = draft(
        "Thank the customer for the kind words.",
        ticket, id="thank", when=triage.sentiment == "positive",
    )  # fmt: skip
    reply = pick_draft(apology, standard, thanks)
    review = keel.approval(
        "Approve the reply",
        id="approve_reply",
        description="Reply to ${{ input.ticket.customer }} (${{ nodes.classify.output.sentiment }}"
        ", ${{ nodes.classify.output.urgency }} urgency): ${{ nodes.pick_draft.output }}",
        assignees=["support"],
        form=ReplyReview,
        timeout="2d",
    )
    sent = send_reply(ticket.id, ticket.customer, reply, review)
    return {"triage": triage, "case": case, "sent": sent}

"""Workflows for the tests of ``keel.testing`` (tests/unit/test_testing_kit.py): what a
developer would write and test with the kit."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import keel
import keel.llm
from keel.spec.policies import RetryPolicy

#: what ``extract`` was called with, per document (a stub must keep it empty)
CALLED: list[str] = []


@keel.task
def extract(document: str) -> dict[str, Any]:
    CALLED.append(document)
    return {"amount": len(document), "source": "real"}


@keel.task
def fraud_score(fields: dict[str, Any]) -> float:
    return 0.9 if fields["amount"] > 100 else 0.1


@keel.task
def coverage(claim_id: str) -> dict[str, Any]:
    return {"claim": claim_id, "covered": True}


@keel.task
def settle(fields: dict[str, Any], score: float, cover: dict[str, Any]) -> str:
    return f"paid {fields['amount']} ({cover['claim']}, score {score})"


@keel.workflow
def claim(claim_id: str, document: str) -> str:
    """Extract, then score and check coverage in parallel, a review, then settle."""
    fields = extract(document)
    score = fraud_score(fields)
    cover = coverage(claim_id)
    review = keel.approval(
        "Fraud review", assignees=["fraud-team"], after=[score, cover], id="review"
    )
    return settle(fields, score, cover, after=[review])


@keel.workflow(name="claim")
def claim_unreviewed(claim_id: str, document: str) -> str:
    """``claim`` with its review removed: a recorded run of ``claim`` no longer replays."""
    fields = extract(document)
    score = fraud_score(fields)
    cover = coverage(claim_id)
    return settle(fields, score, cover)


@keel.task(retry=RetryPolicy(max_attempts=3, initial_backoff=60, jitter=0))
def flaky_fetch(url: str) -> str:
    """Fails on its first two attempts, as a service that is down for a while."""
    attempt = keel.context().attempt
    if attempt < 3:
        raise ConnectionError(f"{url} is down (attempt {attempt})")
    return f"fetched {url}"


@keel.workflow
def fetch(url: str) -> str:
    return flaky_fetch(url)


@keel.task
def send_reminder(who: str) -> str:
    return f"reminded {who}"


@keel.workflow
def remind(who: str) -> str:
    """Wait two days, then remind."""
    wait = keel.timer("2d")
    return send_reminder(who, after=[wait])


@keel.task
def ship(order: str, payment: dict[str, Any]) -> str:
    return f"shipped {order} paid by {payment['by']}"


@keel.workflow
def order(order_id: str) -> str:
    """Wait for the payment's signal, then ship."""
    payment = keel.signal("paid")
    return ship(order_id, payment)


class Sentiment(BaseModel):
    sentiment: str
    urgent: bool


@keel.task
def route(ticket: str, verdict: dict[str, Any]) -> str:
    return ("escalate" if verdict["urgent"] else "queue") + f": {ticket}"


@keel.workflow
def triage(ticket: str) -> str:
    """Ask a model what a ticket means, then route it."""
    verdict = keel.llm.step(
        "Classify this ticket: ${{ t }}",
        values={"t": ticket},
        model="gpt-4o-mini",
        max_tokens=50,
        output=Sentiment,
        id="classify",
    )
    return route(ticket, verdict)


@keel.task
def book(amount: float) -> str:
    return f"booked {amount}"


@keel.workflow
def deadline_review(amount: float) -> str:
    """A review that must come within a day (else the run fails)."""
    review = keel.approval("Review", timeout="1d", on_timeout="reject", id="review")
    return book(amount, after=[review])


class Claim(BaseModel):
    id: str
    amount: float


@keel.task
def pay(claim_id: str, amount: float) -> str:
    return f"paid {amount} for {claim_id}"


@keel.workflow
def pay_claim(claim: Claim) -> str:
    return pay(claim.id, claim.amount)


@keel.workflow(deadline="1h")
def urgent(amount: float) -> str:
    """A review within the run's one-hour deadline."""
    review = keel.approval("Review", id="review")
    return book(amount, after=[review])


@keel.workflow(deadline="1h")
def overnight(amount: float) -> str:
    """A timer longer than the run's deadline: the deadline comes first."""
    wait = keel.timer("1d")
    return book(amount, after=[wait])

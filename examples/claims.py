"""Insurance claim: extract fields, score fraud and look up coverage, then decide.

Fraud scoring and the coverage lookup run in parallel (neither reads the other's
output); the escalation step runs only when fraud is likely. Every step is a plain
function: call it directly in a unit test, or let keel run it durably.

    keel run examples/claims.py -i claim=@examples/claim.json
    keel validate examples/claims.py
    keel graph examples/claims.py
"""

from __future__ import annotations

import re

from pydantic import BaseModel

import keel


class Claim(BaseModel):
    id: str
    policy: str
    document: str


class ClaimFields(BaseModel):
    claimant: str
    amount: float
    incident: str


class Coverage(BaseModel):
    policy: str
    limit: float
    deductible: float


class Decision(BaseModel):
    claim_id: str
    status: str
    payout: float
    reason: str


POLICIES = {
    "P-100": Coverage(policy="P-100", limit=5_000.0, deductible=250.0),
    "P-200": Coverage(policy="P-200", limit=50_000.0, deductible=1_000.0),
}
RISKY_WORDS = ("total loss", "cash only", "no witnesses", "lost receipt")


@keel.task(retries=3, timeout="30s")
def extract(document: str) -> ClaimFields:
    """Pull the structured fields out of the claim text (an LLM step in real life)."""
    claimant = re.search(r"Claimant:\s*(.+)", document)
    amount = re.search(r"Amount:\s*([\d.,]+)", document)
    incident = re.search(r"Incident:\s*(.+)", document)
    if not (claimant and amount and incident):
        raise ValueError("the claim document lacks Claimant, Amount or Incident")
    return ClaimFields(
        claimant=claimant.group(1).strip(),
        amount=float(amount.group(1).replace(",", "")),
        incident=incident.group(1).strip(),
    )


@keel.task
def fraud_score(fields: ClaimFields) -> float:
    """A score in [0, 1]: large amounts and risky wording raise it."""
    score = min(fields.amount / 40_000.0, 0.6)
    score += 0.2 * sum(word in fields.incident.lower() for word in RISKY_WORDS)
    return round(min(score, 1.0), 3)


@keel.task(retries=2, timeout="10s")
def coverage(policy: str) -> Coverage:
    """Look the policy up (a remote API in real life)."""
    if policy not in POLICIES:
        raise LookupError(f"unknown policy {policy}")
    return POLICIES[policy]


@keel.task
def escalate(claim_id: str, score: float) -> str:
    """Open a case for the fraud team; returns the case id."""
    return f"FRAUD-{claim_id}-{int(score * 100)}"


@keel.task
def decide(claim_id: str, fields: ClaimFields, score: float, cover: Coverage) -> Decision:
    """Approve within the policy's limit, or hold for review when fraud is likely."""
    if score > 0.8:
        return Decision(claim_id=claim_id, status="held", payout=0.0, reason="fraud review")
    payout = max(0.0, min(fields.amount, cover.limit) - cover.deductible)
    return Decision(claim_id=claim_id, status="approved", payout=payout, reason="within policy")


@keel.workflow
def claim(claim: Claim) -> Decision:
    """Settle an insurance claim; escalate to the fraud team only when fraud is likely."""
    fields = extract(claim.document)
    score = fraud_score(fields)
    cover = coverage(claim.policy)
    with keel.when(score > 0.8):
        escalate(claim.id, score)
    return decide(claim.id, fields, score, cover)

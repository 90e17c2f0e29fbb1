"""Workflows for ``tests/e2e/test_bad_input_cli.py``: results checked against their
declared types, and a child run whose output a task downstream reads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import keel


class Decision(BaseModel):
    approved: bool
    payout: float


@keel.task(retries=2)
def decide_badly(amount: int) -> Decision:
    # the annotation promises a Decision; the result is not one
    return {"approved": True, "payout": "not-a-number"}  # type: ignore[return-value]


@keel.workflow
def bad_decision(amount: int) -> Decision:
    return decide_badly(amount)


@keel.task
def decide(amount: int) -> Decision:
    return Decision(approved=amount < 100, payout=amount / 2)


@keel.workflow
def child_decision(amount: int) -> Decision:
    return decide(amount)


@keel.task
def pay(decision: Decision) -> dict[str, Any]:
    return {"type": type(decision).__name__, "payout": decision.payout}


@keel.workflow
def parent_pays(amount: int) -> dict[str, Any]:
    """A child run's result goes straight into a task that wants a ``Decision``."""
    return pay(child_decision(amount))

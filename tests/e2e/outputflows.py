"""Workflows for the tests of what the commands print (``tests/e2e/test_output_cli.py``):
node names and an error message long enough to crowd an 80-column table, an approval
with a filled-in description and a form, and a task that holds its worker until the
test lets it go.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, Field

import keel


@keel.task
def validate_customer_address(customer: str) -> str:
    return customer.upper()


@keel.task
def charge_credit_card(address: str, amount: int) -> str:
    if amount < 0:
        raise ValueError(
            f"the payment provider refused the charge for {address}: the amount must be a "
            f"positive number of cents, and {amount} is not one"
        )
    return f"charged {amount}"


@keel.task
def send_confirmation_email(receipt: str) -> str:
    return f"sent: {receipt}"


@keel.workflow
def checkout(customer: str, amount: int) -> str:
    address = validate_customer_address(customer)
    receipt = charge_credit_card(address, amount)
    return send_confirmation_email(receipt)


class Refund(BaseModel):
    """What the approver fills in."""

    reason: str = Field(description="why the refund is right")
    percent: int = 100


@keel.workflow
def refund(customer: str, amount: int) -> str:
    """An approval whose description is filled in from the run, with a form; then a
    signal, so the run is still going after the approval is decided."""
    address = validate_customer_address(customer)
    decision = keel.approval(
        "Refund the customer",
        id="refund_review",
        description=(
            "refund ${{ input.amount }} cents to ${{ nodes.validate_customer_address.output }}"
        ),
        assignees=["ann"],
        form=Refund,
    )
    done = keel.signal("booked", id="booked", after=[decision])
    return send_confirmation_email(address, after=[done])


@keel.task
def hold_until_released(folder: str) -> str:
    Path(folder, "started").touch()
    release = Path(folder, "release")
    deadline = time.monotonic() + 60  # a safety net: the test creates the file
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("nobody created the release file within 60 s")
        time.sleep(0.02)
    return "released"


@keel.workflow
def held(folder: str) -> str:
    return hold_until_released(folder)

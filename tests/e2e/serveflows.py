"""The workflow the ``keel serve`` end-to-end tests deploy: an approval assigned to the
group ``finance``, then a task (executed by whichever worker takes it)."""

from __future__ import annotations

import keel


@keel.task
def book(amount: float) -> str:
    return f"booked {amount}"


@keel.workflow
def payment(amount: float) -> str:
    checked = keel.approval("Check the payment", id="check", assignees=["finance"])
    return book(amount, after=[checked])

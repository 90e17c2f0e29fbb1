"""Invoices, started without a person: a schedule collects the day's invoices every
weekday morning in Berlin, and the billing system's webhook starts a check of each new
invoice. Deploy the workflows (that turns their triggers on) and serve them:

    export INVOICES_SECRET=change-me          # the webhook's shared secret (never in code)
    keel deploy examples/invoices.py
    keel serve examples/invoices.py --with-worker
    keel schedules                            # the next morning run, Berlin time and UTC

The billing system then sends ``POST /hooks/invoices`` signed with that secret (see
docs/triggers.md, "Webhooks"); each delivery id starts one run.
"""

from __future__ import annotations

import keel


@keel.task
def fetch_invoices(day: str) -> list[float]:
    """The day's invoice amounts (the billing system's API in real life)."""
    return [120.0, 80.5, 42.0] if day else []


@keel.task
def total(amounts: list[float]) -> float:
    return round(sum(amounts), 2)


@keel.task
def check_amount(invoice_id: str, amount: float) -> str:
    """Flag what needs a person (a rule engine or a model in real life)."""
    return f"{invoice_id}: {'review' if amount > 1000 else 'ok'}"


@keel.workflow(
    triggers=[
        keel.ScheduleTrigger(
            name="morning-invoices", cron="0 6 * * 1-5", timezone="Europe/Berlin",
            input={"day": "today"}, catch_up="latest", overlap="skip",
        ),
    ],
)  # fmt: skip
def collect_invoices(day: str = "today") -> float:
    return total(fetch_invoices(day))


@keel.workflow(
    triggers=[
        keel.WebhookTrigger(
            path="/invoices", secret_env="INVOICES_SECRET",
            input={"invoice_id": "event.body.id", "amount": "double(event.body.amount)"},
        ),
    ],
)  # fmt: skip
def check_invoice(invoice_id: str, amount: float) -> str:
    return check_amount(invoice_id, amount)

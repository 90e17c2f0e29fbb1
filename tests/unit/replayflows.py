"""Versions of one workflow (``order``) for the replay tests: the one a run is recorded
with, and changed ones, each with one change a replay must find."""

from __future__ import annotations

import keel


@keel.task
def check_fraud(amount: float) -> float:
    return 0.1 if amount < 100 else 0.9


@keel.task
def charge(amount: float, currency: str = "USD") -> str:
    return f"charged {amount} {currency}"


@keel.task
def notify(who: str, receipt: str) -> str:
    return f"told {who}: {receipt}"


@keel.workflow(name="order")
def order(amount: float, vip: bool = False) -> str:
    """As recorded: charge, then tell the VIP desk when the customer is one."""
    receipt = charge(amount)
    with keel.when(vip):
        notify("vip desk", receipt)
    return receipt


@keel.workflow(name="order")
def order_checked(amount: float, vip: bool = False) -> str:
    """A fraud check added before the charge."""
    check_fraud(amount)
    receipt = charge(amount)
    with keel.when(vip):
        notify("vip desk", receipt)
    return receipt


@keel.workflow(name="order")
def order_always_told(amount: float, vip: bool = False) -> str:
    """The VIP desk's condition changed: told of every large order."""
    receipt = charge(amount)
    with keel.when(amount > 10):
        notify("vip desk", receipt)
    return receipt


@keel.workflow(name="order")
def order_untold(amount: float, vip: bool = False) -> str:
    """The notification removed."""
    return charge(amount)


@keel.workflow(name="order")
def order_in_euros(amount: float, vip: bool = False) -> str:
    """The charge's arguments changed."""
    receipt = charge(amount, "EUR")
    with keel.when(vip):
        notify("vip desk", receipt)
    return receipt

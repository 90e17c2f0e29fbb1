"""Customer onboarding: verify the e-mail, set up the account, then personalise and
welcome in parallel (neither needs the other's output, so keel runs them at once).

    keel run onboarding.py --input @input.json
"""

from __future__ import annotations

import re

from pydantic import BaseModel

import keel


class Account(BaseModel):
    account_id: str
    email: str
    plan: str


class InvalidEmail(keel.NonRetryable):
    """A bad address stays bad: failing at once beats retrying."""


@keel.task(retries=3, timeout="20s")
def verify_email(email: str) -> str:
    """Check the address (a mail-verification API in real life); returns it normalised."""
    address = email.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", address):
        raise InvalidEmail(f"{email!r} is not a valid e-mail address")
    return address


@keel.task
def setup_account(email: str, plan: str) -> Account:
    """Create the account record (your database in real life)."""
    return Account(account_id="acct-" + email.split("@")[0], email=email, plan=plan)


@keel.task
def personalise(account: Account, interests: list[str] | None) -> list[str]:
    """Pick starter content for the new customer."""
    return sorted({f"{topic}-starter" for topic in interests or []}) or ["general-starter"]


@keel.task(retries=5)
def welcome(account: Account) -> str:
    """Send the welcome e-mail (your mail service in real life); returns the message id."""
    return f"msg-{account.account_id}"


@keel.workflow
def onboarding(
    email: str, plan: str = "free", interests: list[str] | None = None
) -> dict[str, object]:
    """Onboard a new customer."""
    address = verify_email(email)
    account = setup_account(address, plan)
    content = personalise(account, interests)
    message = welcome(account)
    return {"account": account, "content": content, "message": message}

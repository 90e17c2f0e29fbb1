"""The email an ``email`` step sends, built from its filled templates.

Every address is checked (``keel.spec.email_addresses``): a value that is not exactly
one address, or that holds a line break, fails the step before anything is sent, so
data cannot add a header or a recipient. The subject is one line too. ``bcc``
recipients get the message but are in no header.

The ``Message-ID`` is derived from the attempt's idempotency key without its attempt
number (``run_id:node``, with a map item's index): every attempt of the node sends the
same id, so a receiver that already has the message (an attempt that timed out after
the server took it) can drop the copy a retry sends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from keel.errors import NonRetryable
from keel.spec.email_addresses import has_line_break, parse_address


class EmailMessageError(NonRetryable):
    """A field of the message is not what it must be; the message names the field."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message and its envelope: who sends it and every address it goes to."""

    message: EmailMessage
    sender: str
    recipients: tuple[str, ...]
    message_id: str


def outgoing(fields: dict[str, Any], sender: str, key: str) -> Outgoing:
    """The message the step's filled ``fields`` describe, from ``sender``, with the
    ``Message-ID`` of the step's key ``key`` (``run_id:node``, as every attempt has it)."""
    to = addresses(fields.get("to"), "to")
    if not to:
        raise EmailMessageError("to: gives no address: the message needs a recipient")
    cc = addresses(fields.get("cc"), "cc")
    bcc = addresses(fields.get("bcc"), "bcc")
    reply_to = addresses(fields.get("reply_to"), "reply_to")
    [from_] = addresses(sender, "sender")
    message = EmailMessage()
    message["From"] = from_
    message["To"] = to
    if cc:
        message["Cc"] = cc
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = one_line(text(fields.get("subject")), "subject")
    message["Date"] = formatdate(usegmt=True)
    message_id = message_id_of(key, from_.domain)
    message["Message-ID"] = message_id
    message.set_content(text(fields.get("body", "")))
    html = fields.get("html")
    if html is not None:
        message.add_alternative(text(html), subtype="html")
    recipients = tuple(dict.fromkeys(address.addr_spec for address in (*to, *cc, *bcc)))
    return Outgoing(message, from_.addr_spec, recipients, message_id)


def addresses(value: Any, field: str) -> list[Address]:
    """The addresses a filled field gives: one address, or a list of them (the items of
    a tuple field, each of which may itself be a list)."""
    found: list[Address] = []
    for item in flat(value):
        if not isinstance(item, str):
            raise EmailMessageError(f"{field}: {item!r} is not an email address (it is not text)")
        try:
            found.append(parse_address(item))
        except ValueError as exc:
            raise EmailMessageError(f"{field}: {exc}") from None
    return found


def flat(value: Any) -> Iterable[Any]:
    """A filled address field's items: one value, or the items of a list (an item that
    is a list spread), nothing for None."""
    if value is None:
        return
    if isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, list | tuple):
                yield from item
            elif item is not None:
                yield item
    else:
        yield value


def text(value: Any) -> str:
    """A filled field as text: numbers and the like as their JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def one_line(value: str, field: str) -> str:
    if has_line_break(value):
        raise EmailMessageError(
            f"{field}: holds a line break, which would end the header (a value from the "
            "run's data cannot add headers): give one line"
        )
    return value


def message_id_of(key: str, domain: str) -> str:
    """The ``Message-ID`` of every attempt of the step whose key (``StepContext.step_key``,
    the same for every attempt) is ``key``."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<keel.{digest}@{domain}>"

"""Notifiers: who is told when a run fails, a node fails, or a node runs out of retries.

Three kinds, told apart by ``kind``: a Python callable, an HTTP webhook (a JSON POST) and
an email sent through an SMTP server. They are modelled and validated here;
``keel.runtime.notifications.channels`` delivers them.

A spec is stored and hashed, so it never holds a secret: an SMTP password is named by the
environment variable that holds it (``password_env``), read only when an email is sent.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from keel.spec.types import ImportPath, NonNegativeDuration, PositiveDuration

NotifyOn = Literal[
    "run_failed", "node_failed", "retry_exhausted", "approval_requested", "approval_overdue"
]
#: at least one event, or the notifier would never fire
NotifyOnList = Annotated[tuple[NotifyOn, ...], Field(min_length=1)]

# an HTTP header name is a "token" (RFC 9110, section 5.6.2)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{value!r} is not a webhook URL: write 'https://host/path'")
    if not parts.hostname:
        raise ValueError(f"{value!r} has no host: write 'https://host/path'")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port: write 'https://host:8080/path'") from None
    return value


def _check_headers(value: dict[str, str]) -> dict[str, str]:
    """Refuse header names and values that would break the request (or smuggle another
    header into it through a line break), here rather than at the first failure."""
    for name, text in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid HTTP header name")
        if not _HEADER_VALUE.fullmatch(text):
            raise ValueError(f"the value of header {name!r} must be printable ASCII on one line")
    return value


def _check_address(value: str) -> str:
    local, at, domain = value.strip().rpartition("@")
    if not at or not local or not domain or any(c in value for c in "\r\n"):
        raise ValueError(f"{value!r} is not an email address: write 'name@example.com'")
    return value


EmailAddress = Annotated[str, AfterValidator(_check_address)]


class CallableNotifier(_Frozen):
    """Call ``function`` (``package.module:function``) with the notification, a JSON dict."""

    kind: Literal["callable"] = "callable"
    function: ImportPath
    on: NotifyOnList = ("run_failed",)


class WebhookNotifier(_Frozen):
    """POST the notification as JSON to ``url``.

    Delivery is at least once: an attempt that timed out may still have arrived, so every
    request carries an ``Idempotency-Key`` that receivers can use to drop duplicates.
    Connection errors, timeouts, HTTP 5xx and 429 are retried up to ``max_attempts``,
    waiting ``backoff`` seconds, then twice as long each time (a minute at most).
    """

    kind: Literal["webhook"] = "webhook"
    url: Annotated[str, AfterValidator(_check_url)]
    headers: Annotated[dict[str, str], AfterValidator(_check_headers)] = Field(default_factory=dict)
    #: per attempt
    timeout: PositiveDuration = 10.0
    max_attempts: int = Field(3, ge=1, le=20)
    backoff: NonNegativeDuration = 1.0
    on: NotifyOnList = ("run_failed",)


class EmailNotifier(_Frozen):
    """Send the notification by email through the SMTP server at ``host``:``port``.

    ``starttls`` upgrades the connection to TLS before anything else is said; with
    ``username``, keel logs in with the password held by the environment variable named
    ``password_env``.
    """

    kind: Literal["email"] = "email"
    to: Annotated[tuple[EmailAddress, ...], Field(min_length=1)]
    sender: EmailAddress
    host: str = Field("localhost", min_length=1)
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout: PositiveDuration = 10.0
    on: NotifyOnList = ("run_failed",)

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> EmailNotifier:
        if (self.username is None) != (self.password_env is None):
            raise ValueError(
                "set both username and password_env (the environment variable holding the "
                "password) to log in, or neither"
            )
        return self


Notifier = Annotated[
    CallableNotifier | WebhookNotifier | EmailNotifier, Field(discriminator="kind")
]

"""The worker's defaults for ``email`` steps: the ``[email]`` table of its ``keel.toml``
(found as the worker's config is: ``keel.runtime.worker.config``).

    [email]
    host = "smtp.example.com"     # default localhost
    port = 587                    # default 25
    starttls = true               # default false
    username = "keel"
    password_secret = "SMTP_PASSWORD"   # the NAME of a secret (keel.runtime.secrets)
    sender = "Keel <keel@example.com>"
    timeout = 30                  # seconds per SMTP exchange, default 30

A step's own fields win over these. The password is never in the file: it is the secret
``password_secret`` names, looked up when a step sends, so it is redacted from what the
attempt records.

Invariants: a key or value that is wrong raises ``EmailConfigError`` naming the file and
the key; the file is read once per process and folder.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import NonRetryable
from keel.runtime.worker.config_sections import check_keys, config_place, find_section, table_of
from keel.spec.email_addresses import parse_address
from keel.spec.step_nodes import VARIABLE_NAME

KEYS = ("host", "port", "starttls", "username", "password_secret", "sender", "timeout")
DEFAULT_TIMEOUT = 30.0


class EmailConfigError(NonRetryable):
    """The ``[email]`` settings are wrong; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class EmailDefaults:
    """The ``[email]`` table as read (None: not set)."""

    host: str | None = None
    port: int | None = None
    starttls: bool | None = None
    username: str | None = None
    password_secret: str | None = None
    sender: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    #: where the table is or was looked for, for messages
    #: (``config_sections.config_place``; None: not read from a file)
    source: str | None = None


def email_defaults(start: Path | None = None) -> EmailDefaults:
    """The ``[email]`` table of the config found from ``start`` (the current folder)."""
    return _defaults((start or Path.cwd()).resolve())


def forget_email_config() -> None:
    """Have the next step read the ``[email]`` table again (a test's run does)."""
    _defaults.cache_clear()


@functools.cache
def _defaults(folder: Path) -> EmailDefaults:
    found = find_section(folder, "email", EmailConfigError)
    if found is None:
        return EmailDefaults(source=config_place(folder, "email"))
    return parse_email_table(found[0], found[2])


def parse_email_table(label: str, value: object) -> EmailDefaults:
    """The ``email`` table of a file; ``label`` names the file in errors."""
    raw: dict[str, Any] = table_of(label, "email", value, EmailConfigError)
    check_keys(label, "email", raw, KEYS, EmailConfigError)

    def wrong(key: str, what: str) -> EmailConfigError:
        return EmailConfigError(f"{label}: email.{key} must be {what}, got {raw[key]!r}")

    host, port, starttls = raw.get("host"), raw.get("port"), raw.get("starttls")
    if host is not None and not (isinstance(host, str) and host.strip()):
        raise wrong("host", "a host name")
    if port is not None and not (
        isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535
    ):
        raise wrong("port", "a port number (1-65535)")
    if starttls is not None and not isinstance(starttls, bool):
        raise wrong("starttls", "true or false")
    username, sender = raw.get("username"), raw.get("sender")
    if username is not None and not (isinstance(username, str) and username):
        raise wrong("username", "text")
    secret = raw.get("password_secret")
    if secret is not None and not (isinstance(secret, str) and VARIABLE_NAME.match(secret)):
        # the value is not quoted: it may be the password itself, pasted in the wrong place
        raise EmailConfigError(
            f"{label}: email.password_secret must be the NAME of a secret (letters, digits "
            "and '_', e.g. SMTP_PASSWORD) that holds the password, not the password"
        )
    if sender is not None:
        try:
            parse_address(sender) if isinstance(sender, str) else parse_address("")
        except ValueError:
            raise wrong("sender", "an email address ('keel@example.com')") from None
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 1e6:
        raise wrong("timeout", "a number of seconds > 0")
    if (username is None) != (secret is None):
        raise EmailConfigError(
            f"{label}: email: set both username and password_secret (the secret holding the "
            "password) to log in, or neither"
        )
    return EmailDefaults(host, port, starttls, username, secret, sender, float(timeout), label)

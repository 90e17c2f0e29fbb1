"""The ``email`` built-in step: send one message through an SMTP server.

The server settings are the step's own, else the worker's ``[email]`` table
(``keel.steps.email_config``); the message is built from the step's filled templates
(``keel.steps.email_message``) and sent through keel's one SMTP sender
(``keel.runtime.notifications.smtp``), the one email notifiers use.

The output is ``{"message_id", "to"}``: the id every attempt of the node sends, and the
recipients the server accepted. A server that cannot be reached, drops the connection or
answers "try later" (4xx) fails the attempt as retryable; a refused login, sender or
recipient fails the node (``NonRetryable``), naming what was refused. When the server
refuses some recipients and takes the others, the node fails too, saying who did get
the message: another attempt would send it to them again.
"""

from __future__ import annotations

import ipaddress
import smtplib
import socket
from collections.abc import Sequence
from typing import Any

from keel.authoring.tasks import task
from keel.errors import KeelError, NonRetryable
from keel.runtime.execution.context import StepContext
from keel.runtime.notifications.smtp import Refusal, SmtpServer, send, temporary
from keel.runtime.secrets import secret
from keel.spec.step_nodes import EmailNode
from keel.steps.email_config import EmailDefaults, email_defaults
from keel.steps.email_message import outgoing, text
from keel.steps.filling import filled, step_node, step_timeout
from keel.steps.http_guard import refusal

#: seconds the whole SMTP exchange may take when the step has no timeout
DEFAULT_TIMEOUT = 300.0


class EmailRefusedError(NonRetryable):
    """The server refused the login, the sender or recipients; another attempt would be
    refused the same way."""


class EmailUnavailableError(KeelError):
    """The server could not be reached, went away, or asked to try later (retryable)."""


class EmailSettingsError(NonRetryable):
    """The step and the worker's ``[email]`` table together do not say how to send."""


@task
def email_step(step: dict[str, Any], values: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Send the step's message (see the module)."""
    node = step_node(EmailNode, step)
    fields = filled(node, values)
    defaults = email_defaults()
    server = smtp_server(node, fields, defaults, step_timeout(step))
    sender = fields.get("sender") or defaults.sender
    if not sender:
        raise EmailSettingsError(
            "the step has no sender: set sender on the step or in the [email] table of "
            f"{_where(defaults)}"
        )
    mail = outgoing(fields, text(sender), ctx.step_key)
    where = f"SMTP server {server.address}"
    try:
        refused = send(server, mail.message, sender=mail.sender, recipients=mail.recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        failure = _refusals(where, exc.recipients, ())
        raise (EmailUnavailableError if temporary(exc) else EmailRefusedError)(failure) from None
    except (smtplib.SMTPException, OSError) as exc:
        failure = f"{where}: {type(exc).__name__}: {exc}"
        raise (EmailUnavailableError if temporary(exc) else EmailRefusedError)(failure) from None
    accepted = [address for address in mail.recipients if address not in refused]
    if refused:
        raise EmailRefusedError(_refusals(where, refused, accepted))
    return {"message_id": mail.message_id, "to": accepted}


def smtp_server(
    node: EmailNode, fields: dict[str, Any], defaults: EmailDefaults, timeout: float | None
) -> SmtpServer:
    """The server settings: the step's, else the worker's ``[email]``, else the defaults
    (``localhost:25``, no TLS, no login)."""
    username = fields.get("username")
    password = fields.get("password")
    host = node.host or defaults.host or "localhost"
    port = node.port or defaults.port or 25
    starttls = node.starttls if node.starttls is not None else bool(defaults.starttls)
    if node.host is not None and node.host != defaults.host:
        _check_public(node.host, defaults)
    if username is None and password is None and defaults.username is not None:
        _check_same_server(host, port, starttls, defaults)
        username = defaults.username
        password = secret(defaults.password_secret) if defaults.password_secret else None
    if (username is None) != (password is None):
        raise EmailSettingsError(
            "give both username and password to log in to the SMTP server, or neither "
            "(password: a secret, e.g. ${{ secrets.SMTP_PASSWORD }})"
        )
    seconds = defaults.timeout if timeout is None else min(defaults.timeout, timeout)
    return SmtpServer(
        host=host,
        port=port,
        starttls=starttls,
        username=None if username is None else text(username),
        password=None if password is None else text(password),
        timeout=seconds,
        total=DEFAULT_TIMEOUT if timeout is None else timeout,
    )


def _where(defaults: EmailDefaults) -> str:
    """The file ``[email]`` was read from or looked for in, for messages."""
    return defaults.source or "the worker's keel.toml"


def _check_public(host: str, defaults: EmailDefaults) -> None:
    """A server the step names itself (not ``[email]``'s) must have only public
    addresses: a spec's author may pick a server, but not make the worker speak SMTP to
    its loopback, its private network or a metadata service (``keel.steps.http_guard``).
    An internal relay is the operator's to name, in ``[email]``."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise EmailUnavailableError(f"SMTP server {host}: cannot resolve it: {exc}") from None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        why = refusal(address)
        if why is not None:
            raise EmailSettingsError(
                f"the step names SMTP server {host} ({address}): {why}, which a step may "
                f"not name itself: set host in the [email] table of {_where(defaults)}"
            )


def _check_same_server(host: str, port: int, starttls: bool, defaults: EmailDefaults) -> None:
    """The ``[email]`` login goes only to ``[email]``'s server, as ``[email]`` says to
    reach it: a spec that names another host or port, or turns STARTTLS off, would
    otherwise have the worker hand the operator's password to a server of its choosing,
    or send it in the clear."""
    own = (defaults.host or "localhost", defaults.port or 25)
    where = f"the [email] table of {_where(defaults)}"
    if (host, port) != own:
        raise EmailSettingsError(
            f"the step sends through {host}:{port}, not {own[0]}:{own[1]} of {where}, whose "
            "login is used for that server only: give the step its own username and "
            "password (a secret), or leave host and port to [email]"
        )
    if defaults.starttls and not starttls:
        raise EmailSettingsError(
            f"the step turns STARTTLS off, which {where} turns on: its login would be sent "
            "unencrypted; leave starttls to [email]"
        )


def _refusals(where: str, refused: dict[str, Refusal], accepted: Sequence[str]) -> str:
    said = "; ".join(
        f"{address} ({code} {answer.decode('utf-8', 'replace').strip()})"
        for address, (code, answer) in sorted(refused.items())
    )
    taken = f"; the message went to {', '.join(accepted)}" if accepted else ""
    return f"{where} refused {said}{taken}"

"""Hand one email to an SMTP server: connect, upgrade to TLS if asked, log in if given
credentials, send. The one place keel speaks SMTP: email notifiers
(``keel.runtime.notifications.channels``) and the ``email`` built-in step
(``keel.steps.email``) both send through ``send``.

Only the standard library (``smtplib``, ``ssl``): sending mail adds no dependency.
``send`` raises what ``smtplib`` raises (``smtplib.SMTPException`` and ``OSError``);
``temporary`` says which of those another try may get past.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

#: a recipient the server refused: its SMTP code and answer
Refusal = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to send. ``starttls`` upgrades the connection to TLS (verifying the
    server's certificate) before anything else is said; with ``username`` and
    ``password``, keel logs in."""

    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: seconds each blocking step (connect, each answer) may take
    timeout: float = 10.0
    #: seconds the whole exchange may take (None: no bound but ``timeout``'s): past them
    #: the connection is cut, so a server that answers a byte at a time, each within
    #: ``timeout``, cannot hold the sender for good
    total: float | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def send(
    server: SmtpServer,
    message: EmailMessage,
    *,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
) -> dict[str, Refusal]:
    """Send ``message`` through ``server``; the recipients it refused (the others got it).

    ``sender`` and ``recipients`` are the envelope's (default: the message's ``From``,
    and its ``To``, ``Cc`` and ``Bcc``; a ``Bcc`` header is never sent). When the server
    refuses every recipient, ``smtplib.SMTPRecipientsRefused`` is raised."""
    cut = threading.Event()
    with smtplib.SMTP(timeout=server.timeout) as smtp:
        cutter = None
        if server.total is not None:
            cutter = threading.Timer(server.total, _cut, (smtp, cut))
            cutter.daemon = True
            cutter.start()
        try:
            smtp.connect(server.host, server.port)
            if server.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if server.username is not None and server.password is not None:
                smtp.login(server.username, server.password)
            return smtp.send_message(message, from_addr=sender, to_addrs=recipients)
        except (smtplib.SMTPException, OSError) as exc:
            if cut.is_set():
                raise TimeoutError(f"the SMTP exchange ran past {server.total:g} s") from exc
            raise
        finally:
            if cutter is not None:
                cutter.cancel()


def _cut(smtp: smtplib.SMTP, cut: threading.Event) -> None:
    """End the exchange at its deadline: shutting the socket wakes a blocked read."""
    cut.set()
    sock = smtp.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def temporary(exc: BaseException) -> bool:
    """Whether another try may get past ``exc``: the server was unreachable or went
    away, or answered with a transient (4xx) code. A refused login, sender or recipient
    (5xx) will be refused again."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):  # connect, login, sender, data
        return 400 <= exc.smtp_code < 500 or exc.smtp_code < 0
    if isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
        return False  # STARTTLS or AUTH the server does not offer; a certificate refused
    return isinstance(exc, OSError)  # disconnected, refused, reset, timed out, TLS

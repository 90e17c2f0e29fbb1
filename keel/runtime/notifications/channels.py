"""Deliver one notification through one notifier: call a function, POST a webhook, or
send an email.

``deliver`` either returns (delivered) or raises ``NotifyError`` once delivery has
definitely failed, after the retries a webhook is allowed. It treats the notification as
opaque JSON, except for the fields an email's subject and summary are written from.
Delivery is at least once: a webhook attempt that timed out may still have arrived, so
each request carries an ``Idempotency-Key`` derived from the notification, the same for
every retry of it.

Only the standard library talks to the network (``urllib``, and ``smtplib`` through
``keel.runtime.notifications.smtp``), so notifiers add no dependency. ``sleep`` is
injected so that tests of the backoff do not wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from keel.errors import KeelError
from keel.runtime.execution.task_access import notifier_function
from keel.runtime.notifications.smtp import SmtpServer, send
from keel.spec.notifiers import CallableNotifier, EmailNotifier, WebhookNotifier

AnyNotifier = CallableNotifier | WebhookNotifier | EmailNotifier

#: how much of an error response's body a ``NotifyError`` quotes
_QUOTED_BODY = 200


class NotifyError(KeelError):
    """A notification could not be delivered; the message names the notifier and why."""


def deliver(
    notifier: AnyNotifier,
    notification: dict[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Deliver ``notification`` (a JSON dict) through ``notifier``, or raise ``NotifyError``."""
    if isinstance(notifier, CallableNotifier):
        _call(notifier, notification)
    elif isinstance(notifier, WebhookNotifier):
        _post(notifier, notification, sleep)
    else:
        _send_email(notifier, notification)


def describe(notifier: AnyNotifier) -> str:
    """Name a notifier in messages, without the secrets a URL may carry (its user info and
    query string are left out)."""
    if isinstance(notifier, CallableNotifier):
        return f"callable notifier {notifier.function}"
    if isinstance(notifier, WebhookNotifier):
        parts = urlsplit(notifier.url)
        host = parts.hostname or ""
        if parts.port is not None:
            host += f":{parts.port}"
        return f"webhook notifier {parts.scheme}://{host}{parts.path}"
    return f"email notifier to {', '.join(notifier.to)}"


# --- callable --------------------------------------------------------------------------------


def _call(notifier: CallableNotifier, notification: dict[str, Any]) -> None:
    where = describe(notifier)
    try:  # never imports what a spec names (keel.runtime.execution.task_access)
        function = notifier_function(notifier.function)
    except LookupError as exc:
        raise NotifyError(f"{where}: {exc}") from exc
    try:
        result = function(notification)
        if inspect.iscoroutine(result):
            _run_coroutine(result)
    except Exception as exc:
        raise NotifyError(f"{where} raised {type(exc).__name__}: {exc}") from exc


def _run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Await an async notifier's coroutine, which needs a thread without an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    coroutine.close()  # never awaited: close it, or Python warns about it
    raise RuntimeError(
        "it is async and deliver() was called inside an event loop: call deliver() from a "
        "thread (asyncio.to_thread) or make the function synchronous"
    )


# --- webhook ---------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: urllib would turn the POST into a GET without its body, and report
    success for a notification that nobody received."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def idempotency_key(notification: dict[str, Any]) -> str:
    """The same key for every delivery of one event of one node attempt (of one alert's
    incident), so that receivers can drop the duplicates at-least-once delivery produces."""
    fields = [notification.get(name) for name in ("run_id", "event", "node", "attempt")]
    if "incident" in notification:  # an alert's: fired, then resolved, once each
        fields.append(notification["incident"])
    digest = hashlib.sha256(json.dumps(fields, default=str).encode()).hexdigest()
    return f"keel-{digest[:40]}"


#: the longest a delivery waits between two tries: the wait holds a notifier thread, and
#: a notification that still fails is tried again later from the outbox anyway
LONGEST_WAIT = 60.0


def _post(
    notifier: WebhookNotifier, notification: dict[str, Any], sleep: Callable[[float], None]
) -> None:
    where = describe(notifier)
    body = json.dumps(notification, separators=(",", ":"), default=str).encode()
    headers = {"User-Agent": "keel", **notifier.headers}
    # set last: the receiver relies on them, so configured headers cannot replace them
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = idempotency_key(notification)
    opener = urllib.request.build_opener(_NoRedirect)  # reads proxy settings from the env
    cause = ""
    for attempt in range(1, notifier.max_attempts + 1):
        if attempt > 1:
            sleep(min(notifier.backoff * 2 ** (attempt - 2), LONGEST_WAIT))
        request = urllib.request.Request(notifier.url, data=body, headers=headers, method="POST")
        try:
            # the timeout bounds each blocking step (connect, each read), not the attempt
            with opener.open(request, timeout=notifier.timeout) as response:
                response.read()
            return
        except urllib.error.HTTPError as exc:
            with exc:  # an HTTPError holds the response: close it
                cause = _http_cause(exc)
            if not (exc.code >= 500 or exc.code == 429):
                raise NotifyError(f"{where}: {cause} (not retried)") from exc
        except (OSError, HTTPException) as exc:  # URLError, refused, reset, timed out
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            cause = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    attempts = f"{notifier.max_attempts} attempt{'s' if notifier.max_attempts != 1 else ''}"
    raise NotifyError(f"{where} failed after {attempts}: {cause}")


def _http_cause(exc: urllib.error.HTTPError) -> str:
    if 300 <= exc.code < 400:
        target = exc.headers.get("Location", "elsewhere")
        return f"HTTP {exc.code}, redirected to {target}: configure the final URL"
    try:
        text = exc.read(_QUOTED_BODY + 1).decode("utf-8", "replace").strip()
    except (OSError, HTTPException):
        text = ""
    if len(text) > _QUOTED_BODY:
        text = text[:_QUOTED_BODY] + "..."
    return f"HTTP {exc.code} {exc.reason}" + (f": {text}" if text else "")


# --- email -----------------------------------------------------------------------------------


def _send_email(notifier: EmailNotifier, notification: dict[str, Any]) -> None:
    where = describe(notifier)
    password = None
    if notifier.password_env is not None:
        password = os.environ.get(notifier.password_env)
        if password is None:
            raise NotifyError(
                f"{where}: environment variable {notifier.password_env} is not set; it must "
                "hold the SMTP password"
            )
    server = SmtpServer(notifier.host, notifier.port, notifier.starttls, notifier.username,
                        password, notifier.timeout)  # fmt: skip
    try:
        refused = send(server, email_message(notifier, notification))
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(f"{where} via {server.address}: {type(exc).__name__}: {exc}") from exc
    if refused:
        raise NotifyError(f"{where}: the server refused {', '.join(sorted(refused))}")


def email_message(notifier: EmailNotifier, notification: dict[str, Any]) -> EmailMessage:
    """The email for a notification: a summary a person can read, then the JSON itself
    for whoever needs every field."""
    event = notification.get("event", "notification")
    run_id = str(notification.get("run_id", ""))
    if "alert" in notification:  # an alert's: it has no run
        subject = f"[keel] {event}: {notification['alert']} ({notification.get('condition')})"
    else:
        subject = f"[keel] {event}: workflow {notification.get('workflow')} run {run_id[:12]}"
    if notification.get("node") is not None:
        subject += f" node {notification['node']}"
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())  # opaque values: no line breaks in headers
    message["From"] = notifier.sender
    message["To"] = ", ".join(notifier.to)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=notifier.sender.rpartition("@")[2])
    lines = [
        f"{name}: {notification[key]}"
        for name, key in [
            ("Event", "event"),
            ("Alert", "alert"),
            ("Condition", "condition"),
            ("Value", "shown_value"),
            ("Severity", "severity"),
            ("Description", "description"),
            ("Workflow", "workflow"),
            ("Run", "run_id"),
            ("Node", "node"),
            ("Attempt", "attempt"),
            ("Reason", "reason"),
            ("Fired at", "fired_at"),
            ("At", "at"),
        ]
        if notification.get(key) is not None
    ]
    error = notification.get("error")
    if isinstance(error, dict):
        lines.append(f"Error: {error.get('type')}: {error.get('message')}")
        if error.get("traceback"):
            lines += ["", str(error["traceback"]).rstrip()]
    lines += ["", "Notification (JSON):", json.dumps(notification, indent=2, default=str)]
    message.set_content("\n".join(lines) + "\n")
    return message

"""Notifiers: the spec models validate what people get wrong, and ``deliver`` reaches real
local servers (an HTTP server in a thread, an aiosmtpd SMTP server) the way it would reach
production ones: retries on 5xx, 429 and timeouts with doubling backoff, no retry on other
4xx, one idempotency key per notification, emails with a readable subject and the JSON.

No test waits on the wall clock: ``sleep`` is a recorder, and the one server that does not
answer is released when its test ends.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import TypeAdapter, ValidationError

from keel.errors import KeelError
from keel.runtime.notifications.channels import NotifyError, deliver, idempotency_key
from keel.spec.notifiers import CallableNotifier, EmailNotifier, Notifier, WebhookNotifier
from tests.unit import notify_targets

NOTIFICATION: dict[str, Any] = {
    "event": "retry_exhausted",
    "run_id": "0192f3a4b5c6d7e8f9a0b1c2d3e4f5a6",
    "workflow": "billing",
    "node": "charge",
    "attempt": 3,
    "error": {
        "type": "ConnectionError",
        "message": "card processor unreachable",
        "traceback": 'Traceback (most recent call last):\n  File "tasks.py", line 9',
    },
    "reason": None,
    "at": "2026-11-21T10:00:00+00:00",
}


class SleepRecorder:
    """Stands in for ``time.sleep``: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# --- a real HTTP server ----------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    #: lower-case names: HTTP header names are case-insensitive
    headers: dict[str, str]
    body: bytes


class RecordingServer(ThreadingHTTPServer):
    """Records every request and answers from a script of statuses (the last one repeats;
    ``None`` means never answer, until the test ends)."""

    # join the handler threads on close, so no thread outlives its test
    daemon_threads = False
    block_on_close = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Received] = []
        self.released = threading.Event()
        self._statuses: list[int | None] = [200]
        self._changed = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/keel"

    def answer(self, *statuses: int | None) -> None:
        self._statuses = list(statuses)

    def record(self, request: Received) -> int | None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
            return self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]

    def wait_for(self, count: int) -> bool:
        """Wait until ``count`` requests arrived: a client that timed out does not know
        whether the server has read its request yet."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= count, timeout=30)


class _Handler(BaseHTTPRequestHandler):
    server: RecordingServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        status = self.server.record(Received(self.command, self.path, headers, body))
        if status is None:
            self.server.released.wait(timeout=30)
            self.close_connection = True
            return
        payload = b"" if status < 400 else b'{"detail": "scripted failure"}'
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/moved")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        """Record a GET too, so that a followed redirect would show."""
        self.do_POST()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@contextmanager
def serving() -> Iterator[RecordingServer]:
    """A ``RecordingServer`` answering on a thread of its own until the block ends."""
    server = RecordingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def http_server() -> Iterator[RecordingServer]:
    with serving() as server:
        yield server


def webhook(url: str, **options: Any) -> WebhookNotifier:
    return WebhookNotifier(kind="webhook", url=url, **options)


# --- webhook ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_webhook_retries_server_errors_and_429_with_the_same_body_and_key(
    http_server: RecordingServer, status: int
) -> None:
    http_server.answer(status, status, 200)
    sleep = SleepRecorder()
    notifier = webhook(
        http_server.url,
        headers={"Authorization": "Bearer t0ken", "X-Team": "payments"},
        backoff=0.5,
    )

    deliver(notifier, NOTIFICATION, sleep=sleep)

    requests = http_server.requests
    assert len(requests) == 3
    assert {r.body for r in requests} == {requests[0].body}
    assert json.loads(requests[0].body) == NOTIFICATION
    keys = {r.headers.get("idempotency-key") for r in requests}
    assert keys == {idempotency_key(NOTIFICATION)}
    assert None not in keys
    for request in requests:
        assert request.method == "POST"
        assert request.path == "/hooks/keel"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "keel"
        assert request.headers["authorization"] == "Bearer t0ken"
        assert request.headers["x-team"] == "payments"
    assert sleep.waits == [0.5, 1.0]


def test_webhook_gives_up_after_max_attempts_of_server_errors(
    http_server: RecordingServer,
) -> None:
    http_server.answer(503)
    sleep = SleepRecorder()

    with pytest.raises(NotifyError, match=r"failed after 2 attempts: HTTP 503") as caught:
        deliver(webhook(http_server.url, max_attempts=2, backoff=2), NOTIFICATION, sleep=sleep)

    assert len(http_server.requests) == 2
    assert sleep.waits == [2.0]
    assert "webhook notifier http://127.0.0.1" in str(caught.value)
    assert isinstance(caught.value, KeelError)


def test_webhook_waits_between_tries_grow_to_a_minute_at_most(
    http_server: RecordingServer,
) -> None:
    """A long backoff doubled up to 19 times would hold a notifier thread for years (and
    overflow ``time.sleep``): each wait stops growing at a minute."""
    http_server.answer(503)
    sleep = SleepRecorder()

    with pytest.raises(NotifyError, match="failed after 20 attempts"):
        deliver(webhook(http_server.url, max_attempts=20, backoff="30d"), NOTIFICATION,
                sleep=sleep)  # fmt: skip

    assert sleep.waits == [60.0] * 19


def test_webhook_does_not_retry_a_client_error(http_server: RecordingServer) -> None:
    http_server.answer(400)
    sleep = SleepRecorder()

    with pytest.raises(NotifyError) as caught:
        deliver(webhook(http_server.url), NOTIFICATION, sleep=sleep)

    assert len(http_server.requests) == 1
    assert sleep.waits == []
    message = str(caught.value)
    assert http_server.url in message
    assert "HTTP 400" in message
    assert "scripted failure" in message, "the receiver's explanation is quoted"


def test_webhook_does_not_follow_a_redirect_that_would_drop_the_body(
    http_server: RecordingServer,
) -> None:
    http_server.answer(302)

    with pytest.raises(NotifyError, match=r"HTTP 302, redirected to /moved"):
        deliver(webhook(http_server.url), NOTIFICATION, sleep=SleepRecorder())

    assert [r.path for r in http_server.requests] == ["/hooks/keel"]


def test_webhook_retries_a_server_that_does_not_answer_in_time(
    http_server: RecordingServer,
) -> None:
    http_server.answer(None)
    sleep = SleepRecorder()
    notifier = webhook(http_server.url, timeout=0.3, max_attempts=3, backoff=0.25)

    with pytest.raises(NotifyError, match=r"failed after 3 attempts: TimeoutError"):
        deliver(notifier, NOTIFICATION, sleep=sleep)

    assert sleep.waits == [0.25, 0.5]
    assert http_server.wait_for(3)
    assert len(http_server.requests) == 3


def test_webhook_reports_a_refused_connection_after_retrying() -> None:
    sleep = SleepRecorder()
    notifier = webhook(f"http://127.0.0.1:{free_port()}/hook", max_attempts=2, backoff=0)

    with pytest.raises(NotifyError, match=r"failed after 2 attempts: ConnectionRefusedError"):
        deliver(notifier, NOTIFICATION, sleep=sleep)

    assert sleep.waits == [0.0]


def test_idempotency_key_is_per_event_node_and_attempt() -> None:
    same = idempotency_key({**NOTIFICATION, "at": "2026-11-21T10:05:00+00:00"})
    assert same == idempotency_key(NOTIFICATION), "a redelivery must be recognisable"
    changes: list[dict[str, Any]] = [
        {"attempt": 4},
        {"node": "ship"},
        {"event": "node_failed"},
        {"run_id": "x"},
    ]
    others = {idempotency_key({**NOTIFICATION, **change}) for change in changes}
    assert len(others) == 4
    assert idempotency_key(NOTIFICATION) not in others


# --- email -----------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        # handled=False: aiosmtpd answers a failure with 535 (True would mean "already did")
        return AuthResult(success=data.password == b"s3cret", handled=False)


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox


def free_port() -> int:
    """A port nothing listens on (aiosmtpd's controller cannot be given port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=inbox.authenticate,
        auth_require_tls=False,  # the test server has no certificate; login over plain TCP
    )
    controller.start()
    try:
        yield SmtpServer(controller.port, inbox)
    finally:
        controller.stop()


def mailer(port: int, **options: Any) -> EmailNotifier:
    return EmailNotifier(
        kind="email",
        to=("ops@example.com", "billing-oncall@example.com"),
        sender="keel@example.com",
        host="127.0.0.1",
        port=port,
        **options,
    )


def test_email_reaches_every_recipient_with_a_subject_and_the_json(
    smtp_server: SmtpServer,
) -> None:
    deliver(mailer(smtp_server.port), NOTIFICATION)

    [envelope] = smtp_server.inbox.envelopes
    assert envelope.mail_from == "keel@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "billing-oncall@example.com"]
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == (
        "[keel] retry_exhausted: workflow billing run 0192f3a4b5c6 node charge"
    )
    assert message["To"] == "ops@example.com, billing-oncall@example.com"
    body = message.get_body()
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")  # SMTP carries CRLF line endings
    assert "Error: ConnectionError: card processor unreachable" in text
    assert "Attempt: 3" in text
    summary, _, document = text.partition("Notification (JSON):\n")
    assert json.loads(document) == NOTIFICATION
    assert 'File "tasks.py", line 9' in summary


def test_email_logs_in_with_the_password_from_the_environment(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_TEST_SMTP_PASSWORD", "s3cret")

    deliver(
        mailer(smtp_server.port, username="keel", password_env="KEEL_TEST_SMTP_PASSWORD"),
        NOTIFICATION,
    )

    assert smtp_server.inbox.logins == [(b"keel", b"s3cret")]
    assert len(smtp_server.inbox.envelopes) == 1


def test_email_with_a_rejected_password_fails(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_TEST_SMTP_PASSWORD", "wrong")
    notifier = mailer(smtp_server.port, username="keel", password_env="KEEL_TEST_SMTP_PASSWORD")

    with pytest.raises(NotifyError, match=r"SMTPAuthenticationError"):
        deliver(notifier, NOTIFICATION)

    assert smtp_server.inbox.envelopes == []


def test_email_without_its_password_variable_fails_before_connecting(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEEL_TEST_SMTP_PASSWORD", raising=False)
    notifier = mailer(smtp_server.port, username="keel", password_env="KEEL_TEST_SMTP_PASSWORD")

    with pytest.raises(NotifyError, match=r"KEEL_TEST_SMTP_PASSWORD is not set") as caught:
        deliver(notifier, NOTIFICATION)

    assert "ops@example.com" in str(caught.value)
    assert smtp_server.inbox.logins == []
    assert smtp_server.inbox.envelopes == []


def test_email_to_a_server_that_is_not_there_fails() -> None:
    with pytest.raises(NotifyError, match=r"ConnectionRefusedError"):
        deliver(mailer(free_port(), timeout=5), NOTIFICATION)


# --- callable --------------------------------------------------------------------------------


@pytest.fixture
def received() -> Iterator[list[dict[str, Any]]]:
    notify_targets.received.clear()
    yield notify_targets.received
    notify_targets.received.clear()


@pytest.mark.parametrize("name", ["record", "record_async"])
def test_callable_notifier_is_called_with_the_notification(
    received: list[dict[str, Any]], name: str
) -> None:
    deliver(CallableNotifier(function=f"tests.unit.notify_targets:{name}"), NOTIFICATION)

    assert received == [NOTIFICATION]


def test_callable_notifier_that_raises_fails_naming_it() -> None:
    notifier = CallableNotifier(function="tests.unit.notify_targets:explode")

    with pytest.raises(NotifyError) as caught:
        deliver(notifier, NOTIFICATION)

    assert str(caught.value) == (
        "callable notifier tests.unit.notify_targets:explode raised RuntimeError: "
        "pager is down (event retry_exhausted)"
    )
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (
            "tests.unit.notify_targets:missing",
            "module 'tests.unit.notify_targets' has no 'missing'",
        ),
        ("tests.unit.no_such_module:record", "'tests.unit.no_such_module' was not loaded"),
        ("tests.unit.notify_targets:not_a_function", "is a int, not a function"),
        # a spec cannot make a worker call into the standard library, nor import anything
        ("os:system", "is in the standard library"),
        ("builtins:exec", "is in the standard library"),
    ],
)
def test_callable_notifier_that_cannot_be_resolved_fails(function: str, expected: str) -> None:
    with pytest.raises(NotifyError, match=expected):
        deliver(CallableNotifier(function=function), NOTIFICATION)


# --- the spec models -------------------------------------------------------------------------

NOTIFIER = TypeAdapter[Any](Notifier)


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "callable", "function": "pkg.alerts:page", "on": ["run_failed", "node_failed"]},
        {
            "kind": "webhook",
            "url": "https://hooks.example.com/keel?team=billing",
            "headers": {"Authorization": "Bearer t"},
            "timeout": "5s",
            "max_attempts": 5,
            "backoff": "500ms",
            "on": ["retry_exhausted"],
        },
        {
            "kind": "email",
            "to": ["ops@example.com"],
            "sender": "keel@example.com",
            "host": "smtp.example.com",
            "port": 587,
            "starttls": True,
            "username": "keel",
            "password_env": "SMTP_PASSWORD",
        },
    ],
)
def test_notifiers_round_trip_through_json(data: dict[str, Any]) -> None:
    notifier = NOTIFIER.validate_python(data)
    assert notifier.kind == data["kind"]
    dumped = notifier.model_dump(mode="json")
    assert NOTIFIER.validate_json(json.dumps(dumped)) == notifier


def test_notifier_defaults() -> None:
    notifier = NOTIFIER.validate_python({"kind": "webhook", "url": "http://localhost/x"})
    assert (notifier.timeout, notifier.max_attempts, notifier.backoff) == (10.0, 3, 1.0)
    assert notifier.on == ("run_failed",)
    assert notifier.headers == {}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "webhook", "url": "ftp://example.com/x"}, "is not a webhook URL"),
        ({"kind": "webhook", "url": "hooks.example.com/x"}, "is not a webhook URL"),
        ({"kind": "webhook", "url": "https:///x"}, "has no host"),
        ({"kind": "webhook", "url": "https://example.com:port/x"}, "has an invalid port"),
        (
            {"kind": "webhook", "url": "https://e.com", "headers": {"X-A": "1\r\nX-B: 2"}},
            "must be printable ASCII on one line",
        ),
        ({"kind": "webhook", "url": "https://e.com", "max_attempts": 21}, "less than or equal"),
        ({"kind": "webhook", "url": "https://e.com", "on": []}, "at least 1 item"),
        ({"kind": "webhook", "url": "https://e.com", "on": ["run_ok"]}, "run_failed"),
        ({"kind": "email", "to": ["ops.example.com"], "sender": "k@e.com"}, "not an email"),
        ({"kind": "email", "to": [], "sender": "k@e.com"}, "at least 1 item"),
        ({"kind": "email", "to": ["o@e.com"], "sender": "keel"}, "not an email"),
        (
            {"kind": "email", "to": ["o@e.com"], "sender": "k@e.com", "username": "keel"},
            "set both username and password_env",
        ),
        ({"kind": "sms", "to": "+100"}, "does not match any of the expected tags"),
        ({"kind": "callable", "function": "pkg.alerts"}, "is not an import path"),
    ],
)
def test_notifier_validation_names_the_mistake(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        NOTIFIER.validate_python(data)

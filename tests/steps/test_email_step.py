"""The ``email`` built-in step against a real SMTP server: aiosmtpd on a loopback port,
started by each test, keeping what it is given. The step's task is called as a worker
calls it, with the worker's folder (its ``keel.toml``) as the current one;
``tests/e2e/test_sql_email_steps_cli.py`` sends one through ``keel run``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keel.errors import NonRetryable
from keel.runtime.secrets import revealing
from keel.steps.email import (
    EmailRefusedError,
    EmailSettingsError,
    EmailUnavailableError,
    email_step,
)
from keel.steps.email_config import EmailConfigError
from keel.steps.email_message import EmailMessageError
from tests.steps.smtp_inbox import PASSWORD, Inbox, free_port, serving
from tests.steps.worker_support import attempt, enter_worker_dir


@pytest.fixture
def worker_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The worker's folder, the current one while the test runs."""
    return enter_worker_dir(tmp_path, monkeypatch)


@dataclass
class Server:
    port: int
    inbox: Inbox


@pytest.fixture
def smtp(worker_dir: Path) -> Iterator[Server]:
    """The SMTP server, and a worker whose ``[email]`` table points at it."""
    with serving() as (port, inbox):
        settings(
            worker_dir, f'host = "127.0.0.1"\nport = {port}\nsender = "Keel <keel@example.com>"'
        )
        yield Server(port, inbox)


def settings(folder: Path, table: str) -> None:
    (folder / "keel.toml").write_text(f"[email]\n{table}\n")


def send(node: str = "mail", attempt_no: int = 1, **fields: Any) -> dict[str, Any]:
    """Run an email step as the worker does (the ``step`` the engine gives, filled here)."""
    values = {"input": fields.pop("input", {}), "nodes": fields.pop("nodes", {})}
    step = {"id": node, "kind": "email", **fields}
    output: dict[str, Any] = email_step(step, values, attempt(node, attempt_no))
    return output


# --- the message -------------------------------------------------------------------------------


def test_the_message_reaches_to_cc_and_bcc_with_bcc_in_no_header(smtp: Server) -> None:
    output = send(
        to=["${{ input.owner }}", "${{ input.team }}"],  # the second gives a list
        cc=["Audit <audit@example.com>"],
        bcc=["archive@example.com"],
        subject="Claim ${{ input.claim }} approved",
        body="Claim ${{ input.claim }} was approved for ${{ input.amount }} EUR.",
        input={
            "owner": "Ann Lee <ann@example.com>",
            "team": ["bob@example.com"],
            "claim": "C-17",
            "amount": 1250.5,
        },
    )

    [envelope] = smtp.inbox.envelopes
    assert envelope.mail_from == "keel@example.com"
    assert envelope.rcpt_tos == [
        "ann@example.com", "bob@example.com", "audit@example.com", "archive@example.com"
    ]  # fmt: skip
    message = smtp.inbox.message()
    assert message["From"] == "Keel <keel@example.com>"
    assert message["To"] == "Ann Lee <ann@example.com>, bob@example.com"
    assert message["Cc"] == "Audit <audit@example.com>"
    assert message["Bcc"] is None
    assert isinstance(envelope.original_content, bytes)
    assert b"archive@example.com" not in envelope.original_content  # bcc: in no header
    assert message["Subject"] == "Claim C-17 approved"
    assert message["Date"] is not None
    assert message["Message-ID"] == output["message_id"]
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().strip() == "Claim C-17 was approved for 1250.5 EUR."
    assert output["to"] == envelope.rcpt_tos


def test_an_html_version_is_sent_beside_the_text(smtp: Server) -> None:
    send(to=["ann@example.com"], subject="Report", body="See the table.",
         html="<p>See the <b>table</b> for ${{ input.n }}.</p>", reply_to="ops@example.com",
         input={"n": 3})  # fmt: skip

    message = smtp.inbox.message()
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().strip() == "See the table."
    assert html.get_content().strip() == "<p>See the <b>table</b> for 3.</p>"
    assert message["Reply-To"] == "ops@example.com"


def test_every_attempt_of_a_node_sends_the_same_message_id(smtp: Server) -> None:
    first = send(to=["ann@example.com"], subject="s", attempt_no=1)
    retried = send(to=["ann@example.com"], subject="s", attempt_no=2)
    other = send(node="other", to=["ann@example.com"], subject="s")

    assert first["message_id"] == retried["message_id"]
    assert other["message_id"] != first["message_id"]
    assert first["message_id"].endswith("@example.com>")
    ids = [smtp.inbox.message(index)["Message-ID"] for index in range(3)]
    assert ids == [first["message_id"], first["message_id"], other["message_id"]]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"subject": "${{ input.evil }}"}, r"subject: holds a line break"),
        ({"to": ["${{ input.evil_to }}"]}, r"to: .* holds a line break"),
        ({"cc": ["${{ input.two }}"]}, r"cc: .* is not one email address"),
        ({"reply_to": "${{ input.evil_to }}"}, r"reply_to: .* holds a line break"),
        ({"bcc": ["${{ input.number }}"]}, r"bcc: 7 is not an email address"),
        ({"to": ["${{ input.nobody }}"]}, r"to: gives no address"),
    ],
)
def test_header_injection_and_bad_addresses_are_refused_before_sending(
    smtp: Server, fields: dict[str, Any], message: str
) -> None:
    data = {"evil": "Hello\r\nBcc: victim@example.com", "evil_to": "a@example.com\nBcc: v@x.org",
            "two": "a@example.com, b@example.com", "number": 7, "nobody": []}  # fmt: skip
    step = {"to": ["ann@example.com"], "subject": "s", **fields}

    with pytest.raises(EmailMessageError, match=message) as caught:
        send(**step, input=data)

    assert isinstance(caught.value, NonRetryable)
    assert smtp.inbox.envelopes == []


# --- logging in ------------------------------------------------------------------------------


def test_the_step_logs_in_with_a_secret_password(
    smtp: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_SECRET_SMTP_PASSWORD", PASSWORD)

    with revealing() as revealed:
        send(to=["ann@example.com"], subject="s", username="keel",
             password="${{ secrets.SMTP_PASSWORD }}")  # fmt: skip

    assert smtp.inbox.logins == [(b"keel", PASSWORD.encode())]
    assert len(smtp.inbox.envelopes) == 1
    assert revealed == {"SMTP_PASSWORD": PASSWORD}  # redacted from what the attempt records


def test_the_worker_settings_log_in_with_the_secret_they_name(
    smtp: Server, worker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_SECRET_MAIL_PW", PASSWORD)
    settings(worker_dir, f'host = "127.0.0.1"\nport = {smtp.port}\nsender = "k@example.com"\n'
                         'username = "relay"\npassword_secret = "MAIL_PW"')  # fmt: skip

    with revealing() as revealed:
        send(to=["ann@example.com"], subject="s")

    assert smtp.inbox.logins == [(b"relay", PASSWORD.encode())]
    assert revealed == {"MAIL_PW": PASSWORD}


def test_the_worker_login_is_never_sent_to_a_server_the_step_names(
    smtp: Server, worker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec that names its own host or port (a server its author runs) does not get
    the operator's ``[email]`` password handed to it."""
    monkeypatch.setenv("KEEL_SECRET_MAIL_PW", PASSWORD)
    settings(worker_dir, f'host = "127.0.0.1"\nport = {free_port()}\nsender = "k@example.com"\n'
                         'username = "relay"\npassword_secret = "MAIL_PW"')  # fmt: skip

    with revealing(), pytest.raises(EmailSettingsError, match=r"its own username and password"):
        send(to=["ann@example.com"], subject="s", port=smtp.port)

    assert smtp.inbox.logins == []
    assert smtp.inbox.envelopes == []


def test_the_step_cannot_turn_off_the_starttls_the_worker_login_needs(
    smtp: Server, worker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_SECRET_MAIL_PW", PASSWORD)
    settings(worker_dir, f'host = "127.0.0.1"\nport = {smtp.port}\nsender = "k@example.com"\n'
                         'starttls = true\nusername = "relay"\n'
                         'password_secret = "MAIL_PW"')  # fmt: skip

    with revealing(), pytest.raises(EmailSettingsError, match=r"unencrypted"):
        send(to=["ann@example.com"], subject="s", starttls=False)

    assert smtp.inbox.logins == []


def test_a_wrong_password_fails_without_retry(
    smtp: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_SECRET_SMTP_PASSWORD", "not-the-password")
    with pytest.raises(EmailRefusedError, match=r"SMTPAuthenticationError"):
        send(to=["ann@example.com"], subject="s", username="keel",
             password="${{ secrets.SMTP_PASSWORD }}")  # fmt: skip
    assert smtp.inbox.envelopes == []


def test_a_username_without_a_password_is_refused(smtp: Server) -> None:
    with pytest.raises(EmailSettingsError, match=r"give both username and password"):
        send(to=["ann@example.com"], subject="s", username="keel")


# --- refusals and failures -------------------------------------------------------------------


def test_a_refused_recipient_fails_the_node_naming_who_got_it(smtp: Server) -> None:
    with pytest.raises(EmailRefusedError) as caught:
        send(to=["ann@example.com", "refused@example.com"], subject="s")

    said = str(caught.value)
    assert "refused refused@example.com (550 5.1.1 no such mailbox)" in said
    assert "the message went to ann@example.com" in said
    assert smtp.inbox.envelopes[0].rcpt_tos == ["ann@example.com"]


def test_every_recipient_refused_for_good_fails_without_retry(smtp: Server) -> None:
    with pytest.raises(EmailRefusedError, match=r"refused refused@example.com \(550"):
        send(to=["refused@example.com"], subject="s")
    assert smtp.inbox.envelopes == []


def test_recipients_refused_for_now_are_retryable(smtp: Server) -> None:
    with pytest.raises(EmailUnavailableError, match=r"busy@example.com \(450") as caught:
        send(to=["busy@example.com"], subject="s")
    assert not isinstance(caught.value, NonRetryable)


def test_a_server_that_is_not_there_is_retryable(worker_dir: Path) -> None:
    settings(worker_dir, f'host = "127.0.0.1"\nport = {free_port()}\nsender = "k@example.com"')
    with pytest.raises(EmailUnavailableError, match=r"ConnectionRefusedError") as caught:
        send(to=["ann@example.com"], subject="s")
    assert not isinstance(caught.value, NonRetryable)


def test_a_server_that_answers_a_line_at_a_time_forever_is_cut_at_the_timeout(
    worker_dir: Path,
) -> None:
    """Each line comes well within the per-answer timeout, but the greeting never ends
    (``220-`` continues it): the step's timeout cuts the exchange, as retryable."""
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def trickle() -> None:
            conn, _ = listener.accept()
            with conn:
                while not stop.wait(0.05):
                    try:
                        conn.sendall(b"220-still greeting\r\n")
                    except OSError:
                        return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        settings(worker_dir, f'host = "127.0.0.1"\nport = {port}\nsender = "k@example.com"')
        try:
            with pytest.raises(EmailUnavailableError, match=r"ran past 0.5 s") as caught:
                send(to=["ann@example.com"], subject="s", timeout=0.5)
        finally:
            stop.set()
            thread.join(5)
    assert not isinstance(caught.value, NonRetryable)


# --- settings --------------------------------------------------------------------------------


def test_a_step_may_not_name_a_server_on_the_workers_own_network(
    smtp: Server, worker_dir: Path
) -> None:
    """A spec's author picks a public server at most: the loopback (and private,
    link-local addresses) are the operator's to name, in ``[email]``."""
    settings(worker_dir, 'host = "smtp.example.com"\nsender = "k@example.com"')
    with pytest.raises(EmailSettingsError, match=r"127\.0\.0\.1\): a loopback address"):
        send(to=["ann@example.com"], subject="s", host="127.0.0.1", port=smtp.port)
    assert smtp.inbox.envelopes == []


def test_the_step_fields_win_over_the_worker_settings(smtp: Server, worker_dir: Path) -> None:
    settings(worker_dir, f'host = "127.0.0.1"\nport = {free_port()}\nsender = "k@example.com"')

    send(to=["ann@example.com"], subject="s", port=smtp.port, sender="Ops <ops@example.org>")

    assert smtp.inbox.envelopes[0].mail_from == "ops@example.org"
    assert smtp.inbox.message()["From"] == "Ops <ops@example.org>"


def test_without_a_sender_anywhere_the_step_says_where_to_set_one(
    smtp: Server, worker_dir: Path
) -> None:
    settings(worker_dir, f'host = "127.0.0.1"\nport = {smtp.port}')
    with pytest.raises(EmailSettingsError, match=r"set sender on the step or in the \[email\]"):
        send(to=["ann@example.com"], subject="s")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('hots = "smtp.example.com"', r"email: unknown key 'hots'"),
        ("port = 0", r"email.port must be a port number"),
        ('starttls = "yes"', r"email.starttls must be true or false"),
        ('sender = "not an address"', r"email.sender must be an email address"),
        ('username = "u"', r"set both username and password_secret"),
        ('username = "u"\npassword_secret = "hunter2 pw"', r"password_secret must be the NAME"),
        ("timeout = -1", r"email.timeout must be a number of seconds"),
    ],
)
def test_wrong_settings_name_the_file_and_key(worker_dir: Path, table: str, message: str) -> None:
    settings(worker_dir, table)
    with pytest.raises(EmailConfigError, match=message) as caught:
        send(to=["ann@example.com"], subject="s", sender="k@example.com")
    assert f"keel.toml ({worker_dir / 'keel.toml'})" in str(caught.value)
    assert "hunter2" not in str(caught.value)

"""The ``sql`` and ``email`` built-in steps in a workflow run by ``keel run``, as a user
runs it: a real ``python -m keel`` subprocess in a folder with its ``keel.toml``, a
SQLite database for the steps (its URL held by a secret), and a real SMTP server
(aiosmtpd, in this test's process) for the email. The test reads the run's output, the
database and the message back, and checks that no secret value is in the history."""

from __future__ import annotations

import email
import email.policy
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.steps.smtp_inbox import PASSWORD, Inbox, serving

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 60
LEDGER_URL = "sqlite:///data/ledger.db"

FLOW = """\
name: settle
input_schema:
  type: object
  properties:
    claim: {type: string}
    amount: {type: number}
    owner: {type: string}
  required: [claim, amount, owner]
nodes:
  - id: record
    kind: sql
    connection: ledger
    query: "INSERT INTO claims (id, amount) VALUES (:id, :amount) RETURNING id, amount"
    params: {id: "${{ input.claim }}", amount: "${{ input.amount }}"}
  - id: total
    kind: sql
    connection: ledger
    after: [record]
    query: "SELECT count(*) AS n, sum(amount) AS total FROM claims WHERE amount >= :min"
    params: {min: 0}
  - id: tell
    kind: email
    to: ["${{ input.owner }}"]
    bcc: [audit@example.com]
    subject: "Claim ${{ input.claim }} recorded"
    body: "${{ nodes.total.output.rows[0].n }} claims, ${{ nodes.total.output.rows[0].total }} EUR"
    username: keel
    password: "${{ secrets.SMTP_PASSWORD }}"
    retry: {max_attempts: 2}
outputs:
  recorded: nodes.record.output
  total: nodes.total.output
  mail: nodes.tell.output
"""


@pytest.fixture
def inbox() -> Iterator[tuple[int, Inbox]]:
    with serving() as server:
        yield server


def test_a_workflow_records_a_claim_sums_the_ledger_and_emails_the_owner(
    tmp_path: Path, inbox: tuple[int, Inbox]
) -> None:
    port, handler = inbox
    (tmp_path / "data").mkdir()
    ledger = tmp_path / "data" / "ledger.db"
    with closing(sqlite3.connect(ledger)) as conn, conn:
        conn.execute("CREATE TABLE claims (id TEXT PRIMARY KEY, amount REAL NOT NULL)")
        conn.execute("INSERT INTO claims VALUES ('C-1', 100.0)")
    (tmp_path / "keel.toml").write_text(
        '[sql.connections.ledger]\nurl_secret = "LEDGER_URL"\n\n'
        f'[email]\nhost = "127.0.0.1"\nport = {port}\nsender = "Keel <keel@example.com>"\n'
    )
    (tmp_path / "settle.yaml").write_text(FLOW)
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEEL_")}
    env |= {
        "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}",
        "KEEL_SECRET_LEDGER_URL": LEDGER_URL,
        "KEEL_SECRET_SMTP_PASSWORD": PASSWORD,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }

    def keel(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "keel", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                              check=False)  # fmt: skip
        assert done.returncode == 0, f"keel {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    output = json.loads(keel("run", "-q", "settle.yaml", "-i", "claim=C-2", "-i",
                             "amount=250.5", "-i", "owner=Ann <ann@example.com>"))  # fmt: skip

    assert output["recorded"] == {"rows": [{"id": "C-2", "amount": 250.5}], "row_count": 1,
                                  "columns": ["id", "amount"]}  # fmt: skip
    assert output["total"]["rows"] == [{"n": 2, "total": 350.5}]
    assert output["mail"]["to"] == ["ann@example.com", "audit@example.com"]
    with closing(sqlite3.connect(ledger)) as conn:
        assert conn.execute("SELECT id, amount FROM claims ORDER BY id").fetchall() == [
            ("C-1", 100.0), ("C-2", 250.5)
        ]  # fmt: skip
    [envelope] = handler.envelopes
    assert handler.logins == [(b"keel", PASSWORD.encode())]
    assert envelope.rcpt_tos == ["ann@example.com", "audit@example.com"]
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "Claim C-2 recorded"
    assert message["Bcc"] is None
    assert message["Message-ID"] == output["mail"]["message_id"]
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().strip() == "2 claims, 350.5 EUR"

    runs = json.loads(keel("runs", "--json"))
    run_id = runs[0]["id"]
    recorded = keel("history", run_id, "--json") + keel("show", run_id, "--json")
    assert "C-2" in recorded  # the history is there...
    assert PASSWORD not in recorded  # ...and no secret value is in it
    assert LEDGER_URL not in recorded
    assert "ledger.db" not in recorded

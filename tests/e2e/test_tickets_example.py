"""The ticket-routing example (``examples/tickets.py``) as a user runs it: ``keel run``
in a real subprocess against keel's stub model server (real HTTP on the loopback), a
person approving the drafted reply with ``keel approve`` from another process, and the
run read back with ``keel show``.

The stub's rule-based answers pick the sentiment from the ticket's words, so each of the
three tickets below takes its own branch. The run's folder has a ``keel.toml`` giving
the stub's model a price, so the ledger records a cost for every request.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from keel.llm.stub_server import StubServer
from tests.e2e import test_run_cli, test_waiting_cli
from tests.e2e.test_run_cli import Keel, assert_well_formed, find, nodes_of
from tests.e2e.test_waiting_cli import Background, Start, approvals, wait_for_approval

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tickets.py"
KEEL_TOML = """\
[llm.prices."stub-small"]
input = 1.0
output = 2.0
"""
#: the branch each sentiment takes: the drafting node that runs
BRANCHES = {"negative": "apologise", "neutral": "answer", "positive": "thank"}
TICKETS = {
    "negative": "My order arrived broken and nobody answered my emails. I want a refund.",
    "neutral": "How do I change the delivery address on an order I placed yesterday?",
    "positive": "Thanks a lot, the replacement came quickly and works perfectly. Great service!",
}


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


@pytest.fixture
def keel(tmp_path: Path, stub: StubServer) -> Keel:
    """``keel`` in a folder whose ``keel.toml`` prices the stub's model, with provider
    ``local`` aimed at the stub and the example's defaults (no model override)."""
    base: Keel = test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    (tmp_path / "keel.toml").write_text(KEEL_TOML, encoding="utf-8")
    env = {k: v for k, v in base.env.items() if not k.startswith(("KEEL_TICKETS_", "KEEL_LLM_"))}
    env["KEEL_LLM_LOCAL_BASE_URL"] = stub.url
    return Keel(base.cwd, env, base.db)


@pytest.fixture
def start(keel: Keel) -> Iterator[Start]:
    yield from test_waiting_cli.start.__wrapped__(keel)  # type: ignore[attr-defined]


def ticket_input(sentiment: str) -> str:
    ticket = {"id": f"T-{sentiment[:3]}", "customer": "Dana Reyes", "text": TICKETS[sentiment]}
    return json.dumps({"ticket": ticket})


def ledger(keel: Keel, run_id: str) -> list[dict[str, Any]]:
    """The run's model calls, read from its database."""
    with closing(sqlite3.connect(keel.db)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT node, state, model, input_tokens, output_tokens, usage_reported, cost, "
            "finish_reason, latency FROM model_calls WHERE run_id = ? ORDER BY node, seq",
            (run_id,),
        ).fetchall()
    return [dict(row) for row in rows]


def run_until_approval(
    keel: Keel, start: Start, sentiment: str
) -> tuple[Background, str, dict[str, Any]]:
    """``keel run`` in the background, until its approval is listed (as listed)."""
    running = start("run", str(EXAMPLE), "--input", ticket_input(sentiment))
    run_id = test_waiting_cli.only_run(keel)
    return running, run_id, wait_for_approval(keel, run_id, "approve_reply")


@pytest.mark.parametrize("sentiment", list(BRANCHES))
def test_each_ticket_takes_its_branch_waits_for_approval_and_is_sent(
    keel: Keel, start: Start, stub: StubServer, sentiment: str
) -> None:
    running, run_id, waiting = run_until_approval(keel, start, sentiment)

    assert waiting["title"] == "Approve the reply"
    assert waiting["assignees"] == ["support"]
    assert waiting["description"].startswith(f"Reply to Dana Reyes ({sentiment}, ")
    nodes = nodes_of(keel.show(run_id))
    taken = BRANCHES[sentiment]
    assert nodes["classify"]["status"] == "succeeded"
    assert nodes[taken]["status"] == "succeeded"
    for other in set(BRANCHES.values()) - {taken}:
        assert nodes[other]["status"] == "skipped", other
    assert nodes["open_case"]["status"] == ("succeeded" if sentiment == "negative" else "skipped")
    assert nodes["approve_reply"]["status"] == "awaiting"
    assert nodes["send_reply"]["attempts"] == 0
    # the draft the approver reads is the one the branch's model step wrote
    draft = nodes["pick_draft"]["output"]
    assert draft
    assert draft in waiting["description"]
    # two requests: the classification (with the schema) and the draft (streamed)
    assert len(stub.requests) == 2
    assert stub.requests[0]["response_format"]["type"] == "json_schema"
    assert stub.requests[1]["stream"] is True

    approved = keel.ok("approve", run_id, "approve_reply", "--by", "ann")
    # (running), or (succeeded) when the run got there before the command printed
    assert approved.stdout.startswith(f"run {run_id[:8]}: approve_reply approved (")
    code, out, err = running.finish()

    assert code == 0, err
    result = json.loads(out)
    assert result["triage"]["sentiment"] == sentiment
    assert result["triage"]["urgency"] in ("low", "normal", "high")
    assert result["sent"] == {"ticket": f"T-{sentiment[:3]}", "to": "Dana Reyes", "reply": draft}
    if sentiment == "negative":
        assert result["case"] == "CASE-T-neg-LOW"
    else:
        assert result["case"] is None
    events = keel.history(run_id)
    assert_well_formed(events)
    assert find(events, "approval_decided", "approve_reply", by="ann")
    assert events[-1]["kind"] == "run_completed"
    shown = keel.show(run_id)
    assert shown["status"] == "succeeded"
    assert shown["output"] == result
    # the ledger: one answered, priced call per model node that ran; nothing asked twice
    calls = ledger(keel, run_id)
    assert [(c["node"], c["state"], c["model"]) for c in calls] == sorted(
        [("classify", "answered", "stub-small"), (taken, "answered", "stub-small")]
    )
    for call in calls:
        assert min(call["input_tokens"], call["output_tokens"], call["cost"]) > 0, call
        assert call["finish_reason"] == "stop", call
    assert len(stub.requests) == 2


def test_an_edited_reply_replaces_the_draft(keel: Keel, start: Start) -> None:
    running, run_id, _ = run_until_approval(keel, start, "neutral")
    edited = "Hello Dana, you can change it under Orders > Edit. The support team"
    keel.ok("approve", run_id, "approve_reply", "--data", json.dumps({"edited": edited}))
    code, out, err = running.finish()
    assert code == 0, err
    assert json.loads(out)["sent"]["reply"] == edited
    logged = keel.ok("logs", run_id, "send_reply").stdout
    assert "Orders > Edit" in " ".join(logged.split())


def test_a_rejected_reply_is_not_sent(keel: Keel, start: Start) -> None:
    running, run_id, _ = run_until_approval(keel, start, "positive")
    keel.ok("reject", run_id, "approve_reply", "--by", "bob", "--comment", "too short")
    code, _, err = running.finish()
    assert code == 1, err
    nodes = nodes_of(keel.show(run_id))
    assert nodes["approve_reply"]["status"] == "failed"
    assert nodes["send_reply"]["attempts"] == 0
    assert approvals(keel) == []

"""The incident workflow, run in memory: no database, no worker, and a fake clock, so the
4-hour wait for the all-clear passes at once with ``result.advance``. ``with`` stops the
run's worker should a test leave it waiting.

The chat webhook (the ``http`` step ``notify_chat``) is never called from a test: a stub
stands in for it, called with the request the step would send (``url``, ``headers``,
``body``...), its secrets filled from the ``secrets=`` the test gives (nothing is read
from the environment)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from incident import incident

from keel.testing import run

HERE = Path(__file__).parents[1]
MINOR = json.loads((HERE / "input.json").read_text(encoding="utf-8"))
CRITICAL = json.loads((HERE / "critical.json").read_text(encoding="utf-8"))
CHAT_SECRETS = {"CHAT_WEBHOOK_URL": "https://chat.example.com/hooks/T0", "CHAT_TOKEN": "test-token"}


class Chat:
    """Stands in for the chat webhook: keeps each message, answers as a webhook does
    (the ``http`` step's output: ``status``, ``headers``, ``body``)."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    def __call__(self, url: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        self.posted.append({"url": url, "auth": headers["Authorization"], "text": body["text"]})
        return {"status": 200, "headers": {}, "body": "ok"}


def offline(**stubs: Any) -> dict[str, Any]:
    """The stubs of a test: the chat's, and any others."""
    return {"notify_chat": Chat(), **stubs}


def test_a_minor_incident_is_mitigated_and_closed_without_waiting() -> None:
    result = run(incident, input=MINOR, stubs=offline(), secrets=CHAT_SECRETS)

    assert result.status == "succeeded", result.error
    assert result.node("all_clear").status == "skipped"
    closed = result.output["closed"]
    assert closed["resolved_by"] == "automation"
    assert closed["mitigation"] == "rolled checkout back from checkout@1.4.2"
    for step in ("page_oncall", "post_status", "notify_chat", "collect_diagnostics"):
        assert result.node(step).status == "succeeded"


def test_the_chat_channel_hears_of_the_incident() -> None:
    chat = Chat()

    result = run(incident, input=MINOR, stubs={"notify_chat": chat}, secrets=CHAT_SECRETS)

    assert result.status == "succeeded", result.error
    assert chat.posted == [{
        "url": "https://chat.example.com/hooks/T0",
        "auth": "Bearer test-token",
        "text": "minor incident INC-7 on checkout: error rate above 5%",
    }]  # fmt: skip


def test_a_chat_that_is_down_does_not_hold_up_the_response() -> None:
    def down(url: str) -> dict[str, Any]:
        raise ConnectionError("chat.example.com: connection refused")

    result = run(incident, input=MINOR, stubs={"notify_chat": down}, secrets=CHAT_SECRETS)

    assert result.status == "succeeded", result.error
    assert result.node("notify_chat").status == "failed"
    assert result.node("notify_chat").attempts == 4  # retries=3: four attempts in all
    assert result.output["closed"]["resolved_by"] == "automation"


def test_a_critical_incident_waits_for_the_all_clear() -> None:
    with run(incident, input=CRITICAL, stubs=offline(), secrets=CHAT_SECRETS) as result:
        assert result.status == "waiting"
        assert result.node("page_oncall").output == "paged on-call for payments"

        result.signal("resolved", data={"by": "ann", "cause": "bad deploy"})

        assert result.status == "succeeded", result.error
        assert result.output["closed"]["resolved_by"] == "ann"
        result.assert_events("node_awaiting", "signal_received")


def test_no_all_clear_in_4_hours_undoes_the_mitigation_and_escalates() -> None:
    with run(incident, input=CRITICAL, stubs=offline(), secrets=CHAT_SECRETS) as result:
        result.advance("5h")

        assert result.status == "failed"
        assert result.node("compensate:mitigate").status == "succeeded"
        assert result.node("compensate:post_status").status == "succeeded"
        assert result.node("run:on_failure").output.startswith("escalated: all_clear failed")
        result.assert_events("run_failing", "run_failed")


def test_a_failed_mitigation_takes_the_status_notice_down() -> None:
    def broken_mitigation(*args: object, **kwargs: object) -> dict[str, str]:
        raise RuntimeError("rollback refused: no previous version")

    result = run(incident, input=MINOR, stubs=offline(mitigate=broken_mitigation),
                 secrets=CHAT_SECRETS)  # fmt: skip

    assert result.status == "failed"
    assert result.node("mitigate").attempts == 3  # retries=2: three attempts in all
    assert result.node("compensate:post_status").output == "withdrew notice notice-INC-7"
    assert result.node("close_incident").status != "succeeded"

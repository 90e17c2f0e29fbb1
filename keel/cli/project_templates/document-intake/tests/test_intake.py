"""The intake workflow, run in memory: no database, no worker. An approval waits for
``result.approve``/``result.reject``, as a person would decide with ``keel approve``;
``with`` stops the run's worker when a test leaves it waiting."""

from __future__ import annotations

import json
from pathlib import Path

from intake import intake

from keel.testing import run

HERE = Path(__file__).parents[1]
COMPLETE = json.loads((HERE / "input.json").read_text(encoding="utf-8"))
INCOMPLETE = json.loads((HERE / "incomplete.json").read_text(encoding="utf-8"))


def test_a_complete_document_is_indexed_without_review() -> None:
    result = run(intake, input=COMPLETE)

    assert result.status == "succeeded", result.error
    assert result.node("review").status == "skipped"
    assert result.output["problems"] == []
    assert result.output["index_id"] == "idx:s3://intake/invoice-0042.txt:3"


def test_a_document_missing_its_total_waits_for_a_review() -> None:
    with run(intake, input=INCOMPLETE) as result:
        assert result.status == "waiting"
        assert result.node("review").status == "awaiting"
        assert result.node("check_fields").output["problems"] == ["missing total"]
        assert result.node("index").status != "succeeded"  # nothing indexed before it


def test_the_reviewer_fills_in_the_total_and_the_document_is_indexed() -> None:
    with run(intake, input=INCOMPLETE) as result:
        result.approve("review", data={"note": "on page 2", "total": "118.00"}, by="ann")

        assert result.status == "succeeded", result.error
        assert result.output["review"]["total"] == "118.00"
        assert result.output["index_id"] == "idx:s3://intake/invoice-0043.txt:3"
        result.assert_events("node_awaiting", "approval_decided")


def test_a_rejected_document_is_not_indexed() -> None:
    with run(intake, input=INCOMPLETE) as result:
        result.reject("review", by="ann", comment="not our invoice")

        assert result.status == "failed"
        assert result.node("review").status == "failed"
        assert result.node("index").status != "succeeded"


def test_an_empty_document_fails_at_once() -> None:
    empty = {"document": {"uri": "s3://intake/empty.txt", "text": "  "}}

    result = run(intake, input=empty)

    assert result.status == "failed"
    assert result.node("load").attempts == 1

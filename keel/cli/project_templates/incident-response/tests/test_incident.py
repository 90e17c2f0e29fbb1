"""The incident workflow, run in memory: no database, no worker, and a fake clock, so the
4-hour wait for the all-clear passes at once with ``result.advance``. ``with`` stops the
run's worker should a test leave it waiting."""

from __future__ import annotations

import json
from pathlib import Path

from incident import incident

from keel.testing import run

HERE = Path(__file__).parents[1]
MINOR = json.loads((HERE / "input.json").read_text(encoding="utf-8"))
CRITICAL = json.loads((HERE / "critical.json").read_text(encoding="utf-8"))


def test_a_minor_incident_is_mitigated_and_closed_without_waiting() -> None:
    result = run(incident, input=MINOR)

    assert result.status == "succeeded", result.error
    assert result.node("all_clear").status == "skipped"
    closed = result.output["closed"]
    assert closed["resolved_by"] == "automation"
    assert closed["mitigation"] == "rolled checkout back from checkout@1.4.2"
    for step in ("page_oncall", "post_status", "collect_diagnostics"):
        assert result.node(step).status == "succeeded"


def test_a_critical_incident_waits_for_the_all_clear() -> None:
    with run(incident, input=CRITICAL) as result:
        assert result.status == "waiting"
        assert result.node("page_oncall").output == "paged on-call for payments"

        result.signal("resolved", data={"by": "ann", "cause": "bad deploy"})

        assert result.status == "succeeded", result.error
        assert result.output["closed"]["resolved_by"] == "ann"
        result.assert_events("node_awaiting", "signal_received")


def test_no_all_clear_in_4_hours_undoes_the_mitigation_and_escalates() -> None:
    with run(incident, input=CRITICAL) as result:
        result.advance("5h")

        assert result.status == "failed"
        assert result.node("compensate:mitigate").status == "succeeded"
        assert result.node("compensate:post_status").status == "succeeded"
        assert result.node("run:on_failure").output.startswith("escalated: all_clear failed")
        result.assert_events("run_failing", "run_failed")


def test_a_failed_mitigation_takes_the_status_notice_down() -> None:
    def broken_mitigation(*args: object, **kwargs: object) -> dict[str, str]:
        raise RuntimeError("rollback refused: no previous version")

    result = run(incident, input=MINOR, stubs={"mitigate": broken_mitigation})

    assert result.status == "failed"
    assert result.node("mitigate").attempts == 3  # retries=2: three attempts in all
    assert result.node("compensate:post_status").output == "withdrew notice notice-INC-7"
    assert result.node("close_incident").status != "succeeded"

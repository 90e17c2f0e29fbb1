"""Incident response: triage an alert; page the on-call, post a status notice, tell the
team's chat channel and collect diagnostics in parallel; mitigate; for a critical
incident, wait for the on-call's all-clear (a signal); close the incident.

The chat message is keel's built-in ``http`` step: a POST to a webhook whose URL and
token are secrets (``${{ secrets.CHAT_WEBHOOK_URL }}``, ``${{ secrets.CHAT_TOKEN }}``),
looked up by the worker when the step runs (``KEEL_SECRET_CHAT_WEBHOOK_URL``... or the
secrets file of keel.toml), never written in the workflow or its history. A chat that
cannot be reached (or secrets not set, as on a fresh checkout) does not hold up the
response: the step fails after its retries and the run goes on (``on_failure``).

If a step fails, or no all-clear comes within 4 hours, the run fails: keel then undoes
the mitigation and takes the status notice down (each step's ``compensate=``, newest
first) and calls the run's failure handler, which escalates.

    keel run incident.py --input @input.json          # minor: no all-clear needed
    keel run incident.py --input @critical.json       # waits for the all-clear
    keel signal RUN resolved --data '{"by": "ann", "cause": "bad deploy"}'
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

import keel


class Alert(BaseModel):
    id: str
    service: str
    summary: str
    severity: Literal["minor", "major", "critical"]


class Resolution(BaseModel):
    """What the on-call sends with the all-clear."""

    by: str
    cause: str = ""


@keel.task
def triage(severity: str) -> dict[str, Any]:
    """Decide how loud to be (a runbook lookup in real life)."""
    return {"page": severity != "minor", "needs_all_clear": severity == "critical"}


@keel.task(retries=3)
def page_oncall(service: str, page: bool) -> str:
    """Page the on-call engineer (your paging service in real life)."""
    return f"paged on-call for {service}" if page else "no page: minor incident"


@keel.task
def withdraw_status(output: dict[str, str]) -> str:
    """Compensation of ``post_status``: given what it returned (its ``output``)."""
    return f"withdrew notice {output['notice_id']}"


@keel.task(retries=3, compensate=withdraw_status)
def post_status(alert_id: str, summary: str) -> dict[str, str]:
    """Post a notice on the status page (your status page's API in real life)."""
    return {"notice_id": f"notice-{alert_id}", "text": f"Investigating: {summary}"}


@keel.task(timeout="2m")
def collect_diagnostics(service: str) -> dict[str, Any]:
    """Gather what the on-call needs (logs, metrics, recent deploys in real life)."""
    return {"service": service, "error_rate": 0.12, "last_deploy": f"{service}@1.4.2"}


@keel.task
def roll_back_mitigation(output: dict[str, str]) -> str:
    """Compensation of ``mitigate``: put back what it changed."""
    return f"undid {output['action']}"


@keel.task(retries=2, compensate=roll_back_mitigation)
def mitigate(service: str, diagnostics: dict[str, Any]) -> dict[str, str]:
    """Act on the diagnostics (a rollback or a scale-up in real life)."""
    return {"action": f"rolled {service} back from {diagnostics['last_deploy']}"}


@keel.task
def close_incident(
    alert_id: str, page: str, notice: dict[str, str], mitigation: dict[str, str],
    resolution: Resolution | None,
) -> dict[str, Any]:  # fmt: skip
    """Record the incident as closed; ``resolution`` is None when none was needed."""
    return {
        "incident": alert_id,
        "page": page,
        "notice": notice["notice_id"],
        "mitigation": mitigation["action"],
        "resolved_by": resolution.by if resolution else "automation",
    }


@keel.task
def escalate(failure: dict[str, Any]) -> str:
    """The run's failure handler: given what failed and what was undone."""
    undone = ", ".join(f"{c['node']} {c['status']}" for c in failure["compensations"])
    return f"escalated: {failure['node']} failed ({failure['reason']}); undone: {undone}"


@keel.workflow(on_failure=escalate)
def incident(alert: Alert) -> dict[str, Any]:
    """Respond to one alert, from page to close."""
    plan = triage(alert.severity)
    page = page_oncall(alert.service, plan["page"])  # these four run in parallel:
    notice = post_status(alert.id, alert.summary)  # none needs another's output
    keel.http(  # and so does this one
        keel.secrets.CHAT_WEBHOOK_URL,
        method="POST",
        headers={"Authorization": "Bearer ${{ secrets.CHAT_TOKEN }}"},
        body={"text": "${{ severity }} incident ${{ id }} on ${{ service }}: ${{ summary }}"},
        values={"severity": alert.severity, "id": alert.id, "service": alert.service,
                "summary": alert.summary},
        id="notify_chat", retries=3, timeout="10s", on_failure="continue",
    )  # fmt: skip
    diagnostics = collect_diagnostics(alert.service)
    mitigation = mitigate(alert.service, diagnostics)
    resolution = keel.signal(
        "resolved", id="all_clear", schema=Resolution, timeout="4h",
        when=plan["needs_all_clear"],
    )  # fmt: skip
    closed = close_incident(alert.id, page, notice, mitigation, resolution)
    return {"closed": closed, "diagnostics": diagnostics}

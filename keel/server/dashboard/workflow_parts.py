"""What the workflow page shows besides its runs: the versions with their deploys, the
triggers with their next fire times, and how a grid cell names a node's state (the
difference between two versions is ``yaml_diff``'s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keel.runtime.triggers.schedules import schedule_names
from keel.runtime.views.report import NodeReport
from keel.spec.model import WorkflowSpec
from keel.spec.triggers import (
    CompletionTrigger,
    EventTrigger,
    FileTrigger,
    ScheduleTrigger,
    WebhookTrigger,
)
from keel.store.deployments import Deployment


@dataclass(slots=True)
class Version:
    """A version of a workflow and every deploy that made it current."""

    version: str
    deploys: list[Deployment] = field(default_factory=list)
    current: bool = False

    @property
    def first(self) -> Deployment:
        return self.deploys[0]


def versions_of(history: list[Deployment]) -> list[Version]:
    """The versions in ``history`` (deploys oldest first), newest first deploy last;
    the current one is the version deployed last (a redeploy of an older one is a
    rollback: it is current again)."""
    found: dict[str, Version] = {}
    for deployment in history:
        found.setdefault(deployment.version, Version(deployment.version)).deploys.append(deployment)
    if history:
        found[history[-1].version].current = True
    return list(found.values())


def find_version(versions: list[Version], wanted: str | None) -> Version | None:
    """The version ``wanted`` names (its hash or first digits, at least 6), or the
    current one when None; None when no deployed version of the workflow matches."""
    if wanted is None:
        return next((v for v in versions if v.current), None)
    if len(wanted) < 6:
        return None
    matches = [v for v in versions if v.version.startswith(wanted)]
    return matches[0] if len(matches) == 1 else None


def trigger_rows(spec: WorkflowSpec, schedules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each trigger of ``spec`` in words; a schedule with its state and next fire
    times (``schedules``: the documents of ``keel schedules``, of this workflow)."""
    by_name = {doc["name"]: doc for doc in schedules}
    names = schedule_names(spec)
    rows: list[dict[str, Any]] = []
    for index, trigger in enumerate(spec.triggers):
        row: dict[str, Any] = {"kind": trigger.kind, "what": "", "name": None, "schedule": None}
        if isinstance(trigger, ScheduleTrigger):
            row["what"] = f"{trigger.cron} ({trigger.timezone})"
            row["name"] = names[index]
            row["schedule"] = by_name.get(names[index])
        elif isinstance(trigger, WebhookTrigger):
            row["what"] = f"{trigger.method} /hooks{trigger.path}"
        elif isinstance(trigger, EventTrigger):
            row["what"] = f"event {trigger.event}"
        elif isinstance(trigger, FileTrigger):
            row["what"] = f"files {trigger.pattern} in {trigger.folder}"
        elif isinstance(trigger, CompletionTrigger):
            row["what"] = f"after {trigger.after} {' or '.join(trigger.status)}"
        rows.append(row)
    return rows


#: a node's status in a run (``run_report``) -> the state class that draws it
_STATES = {
    "succeeded": "succeeded", "failed": "failed", "running": "running",
    "awaiting": "waiting", "waiting": "pending", "not_started": "pending",
    "skipped": "skipped", "upstream_failed": "skipped", "withdrawn": "cancelled",
    "cancelled": "cancelled", "scheduled": "queued",
}  # fmt: skip


def cell_state(report: NodeReport) -> str:
    """The state class of a grid cell: a scheduled retry waiting for its backoff is
    ``retrying``, a node not reached yet ``pending``."""
    if report.status == "scheduled" and report.retries:
        return "retrying"
    return _STATES.get(report.status, "pending")


def cell_title(report: NodeReport) -> str:
    """What a cell says on hover: the status, the attempts, the last attempt's time."""
    words = {"awaiting": f"waits for {report.waits_for or 'something outside the run'}",
             "waiting": "not reached yet", "scheduled": "queued"}  # fmt: skip
    parts = [report.id, words.get(report.status, report.status.replace("_", " "))]
    if report.attempts > 1:
        parts.append(f"{report.attempts} attempts")
    if report.duration is not None:
        parts.append(f"{report.duration:.1f} s")
    if report.error is not None:
        parts.append(f"{report.error.type}: {report.error.message}"[:200])
    return " · ".join(parts)

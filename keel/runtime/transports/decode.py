"""The API's JSON documents back into the store's values (``RunRecord``, ``Wait``,
``StoredEvent``), so an HTTP client returns what a store client returns.

What a document leaves out is left empty: a run's ``head_hash`` is "" (its history and
``verify`` give the chain)."""

from __future__ import annotations

from typing import Any

from keel.engine.events import from_data
from keel.store.records import RunRecord, StoredEvent, Wait
from keel.store.task_logs import TaskLogLine

#: a wait document's own fields; the rest are the wait's details (``wait_document``)
_WAIT_FIELDS = ("run_id", "workflow", "node", "waits_for", "since", "until", "run_status")


def run_of(doc: dict[str, Any]) -> RunRecord:
    """A run from ``run_document``'s shape (``run_detail`` has it too)."""
    return RunRecord(
        id=doc["id"], workflow=doc["workflow"], spec_version=doc["spec_version"],
        status=doc["status"], input=doc["input"], output=doc["output"],
        reason=doc["reason"], created_at=doc["created_at"], updated_at=doc["updated_at"],
        last_seq=doc["events"], head_hash="", origin=doc.get("origin"),
        parent_run=doc.get("parent_run"), parent_node=doc.get("parent_node"),
        started_by=doc.get("started_by"), late=bool(doc.get("late", False)),
        pruned_at=doc.get("pruned_at"),
    )  # fmt: skip


def wait_of(doc: dict[str, Any]) -> Wait:
    details = {key: value for key, value in doc.items() if key not in _WAIT_FIELDS}
    return Wait(doc["run_id"], doc["node"], doc["waits_for"], doc["since"], doc["until"],
                details, doc.get("workflow", ""), doc.get("run_status", ""))  # fmt: skip


def event_of(run_id: str, doc: dict[str, Any]) -> StoredEvent:
    """An event from ``event_document``'s shape."""
    event = from_data({"kind": doc["kind"], **doc["data"]})
    return StoredEvent(run_id, doc["seq"], doc["at"], event, doc["prev_hash"], doc["hash"])


def log_line_of(run_id: str, doc: dict[str, Any]) -> TaskLogLine:
    """A task's log line from ``log_line_document``'s shape."""
    return TaskLogLine(run_id, doc["seq"], doc["node"], doc.get("item"), doc["attempt"],
                       doc["at"], doc["level"], doc["message"])  # fmt: skip

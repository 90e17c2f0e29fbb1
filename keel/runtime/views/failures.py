"""Failed runs as dead letters: which node failed, with what error, after how many
attempts. A failed run keeps its whole history, so it can be inspected and (issue 5,
``keel retry``) continued from the failed nodes without re-running the rest."""

from __future__ import annotations

from dataclasses import dataclass

from keel.engine.events import ErrorInfo, NodeFailed, NodeStarted, RunFailed
from keel.store.protocol import Store
from keel.store.records import RunRecord, StoredEvent


@dataclass(frozen=True, slots=True)
class FailedRun:
    record: RunRecord
    #: the node whose failure failed the run (None when the run failed as a whole, e.g.
    #: its outputs could not be computed)
    node: str | None
    error: ErrorInfo | None
    #: the failing node's attempts (a map: the highest attempt number of any item)
    attempts: int


def failure_of(record: RunRecord, history: list[StoredEvent]) -> FailedRun:
    """The failing node of a failed run, its last error and how many attempts it had."""
    node = next(
        (s.event.node for s in reversed(history) if isinstance(s.event, RunFailed)),
        record.failed_node,
    )  # (a pruned run's history is gone: its row's)
    error: ErrorInfo | None = None
    attempts: set[tuple[int | None, int]] = set()
    for stored in history:
        event = stored.event
        if isinstance(event, NodeFailed) and event.node == node:
            error = event.error
        elif isinstance(event, NodeStarted) and event.node == node:
            attempts.add((event.item, event.attempt))
    # a map's items each number their attempts: count its highest, not their sum
    numbers = [attempt for item, attempt in attempts if item is not None]
    return FailedRun(record, node, error, max(numbers) if numbers else len(attempts))


def failed_runs(store: Store, *, workflow: str | None = None, limit: int = 50) -> list[FailedRun]:
    """Failed runs, newest first, each with its failing node and error."""
    records = store.list_runs(status="failed", workflow=workflow, limit=limit)
    return [failure_of(record, store.history(record.id)) for record in records]

"""Acting on every run a filter selects, not only the runs a page shows: cancel the runs
not ended, or retry the failed ones.

The selection is the store's (``Store.list_runs`` paged with its cursor, the same filters
as the list and its counts), limited to the runs the action applies to (a cancel: the
runs not ended; a retry: the failed ones) and to ``CAP`` runs, newest first. Each run is
then acted on with the same operation as ``keel cancel`` / ``keel retry`` and the API,
recorded in its history with who did it and why. Each is re-read just before: a run
that no longer matches the filters is skipped, and the operation itself refuses what no
longer applies to the run as it is in its transaction (another process may act on it
meanwhile); the report says which, for every run. Nothing is said to be done that was
not.

It runs in the request (on a thread), one transaction a run: not a job that survives a
restart of the server, and capped (``CAP``) so that a request ends well within a
proxy's timeout. A run already acted on is not acted on again by a repeat (it no longer
applies), so the same action may simply be given again for the runs past the cap.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from keel.errors import KeelError, RunNotFoundError
from keel.runtime.clock import Clock
from keel.runtime.operations.control import cancel_run
from keel.runtime.operations.manual import retry_run
from keel.server.dashboard.run_filters import RunFilters
from keel.store.protocol import Store
from keel.store.records import RunRecord

#: the most runs one bulk action touches, all in one request (the preview says so when
#: more match; the action is given again for the rest)
CAP = 1_000
#: runs read from the store at once while selecting
PAGE = 500

Perform = Callable[[Store, str, str, str, Clock], RunRecord]


def _cancel(store: Store, run_id: str, by: str, reason: str, clock: Clock) -> RunRecord:
    return cancel_run(store, run_id, reason=reason, by=by, clock=clock)


def _retry(store: Store, run_id: str, by: str, reason: str, clock: Clock) -> RunRecord:
    return retry_run(store, run_id, by=by, reason=reason, clock=clock)


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    #: for a button: "Cancel", "Retry"
    verb: str
    #: the statuses of the runs it applies to
    statuses: tuple[str, ...]
    #: what the runs it applies to are called ("runs not ended")
    applies_to: str
    perform: Perform


ACTIONS = {
    "cancel": Action("cancel", "Cancel", ("pending", "running", "failing", "paused"),
                     "runs not ended", _cancel),
    "retry": Action("retry", "Retry", ("failed",), "failed runs", _retry),
}  # fmt: skip


def statuses(filters: RunFilters, action: Action) -> tuple[str, ...]:
    """The statuses the action selects under ``filters`` (none: nothing to do)."""
    if filters.status is None:
        return action.statuses
    return (filters.status,) if filters.status in action.statuses else ()


def count(store: Store, filters: RunFilters, action: Action) -> int:
    """How many runs the action would select, from the store's counts."""
    counts = store.count_runs(**filters.but(status=None).query())
    return sum(counts.get(status, 0) for status in statuses(filters, action))


def _walk(store: Store, filters: RunFilters, status: str, page: int) -> Iterator[RunRecord]:
    """Every run with ``status`` the filters select, newest first, paged by cursor."""
    query = filters.but(status=status).query()
    cursor: tuple[float, str] | None = None
    while True:
        records = store.list_runs(**query, cursor=cursor, limit=page)
        yield from records
        if len(records) < page:
            return
        cursor = (records[-1].created_at, records[-1].id)


def select(
    store: Store, filters: RunFilters, action: Action, most: int | None = None
) -> list[RunRecord]:
    """The first ``most`` (default ``CAP``) runs the action applies to, newest first (as
    the list shows them: by creation time, then id)."""
    most = CAP if most is None else most
    page = min(PAGE, max(most, 1))
    walks = [_walk(store, filters, status, page) for status in statuses(filters, action)]
    merged = heapq.merge(*walks, key=lambda run: (-run.created_at, run.id))
    found: list[RunRecord] = []
    for run in merged:
        if len(found) >= most:
            break
        found.append(run)
    return found


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one run: ``done`` (``status``: its status after), ``refused`` (the
    operation's words), or ``skipped`` (it no longer matched the filters)."""

    run: RunRecord
    result: Literal["done", "refused", "skipped"]
    message: str


def perform(
    store: Store,
    filters: RunFilters,
    action: Action,
    runs: list[RunRecord],
    *,
    by: str,
    reason: str,
    clock: Clock,
) -> list[Outcome]:
    """Act on each of ``runs`` (``select``'s), re-checking each first; one outcome each."""
    outcomes: list[Outcome] = []
    for run in runs:
        try:
            now = store.get_run(run.id)
        except RunNotFoundError:
            outcomes.append(Outcome(run, "skipped", "the run no longer exists"))
            continue
        if not filters.matches(now):  # the action's own conditions: the operation's
            outcomes.append(Outcome(now, "skipped", f"it no longer matches the filters "
                                    f"(now {now.status})"))  # fmt: skip
            continue
        try:
            after = action.perform(store, run.id, by, reason, clock)
        except KeelError as refused:
            outcomes.append(Outcome(now, "refused", str(refused)))
            continue
        outcomes.append(Outcome(after, "done", f"now {after.status}"))
    return outcomes

"""A run as a row of the runs list: what the page draws and the live stream redraws
(``runs_row.html``, one ``<tr id="run-<id>">``), from the run's row in the store.

A run not ended says what it is doing, in the words of ``keel runs`` and ``GET /runs``
(``run_activity``: two queries a run, cheap enough for a page of 50); a failed run says
where it failed and why, from its row (``failed_node``, ``error_type``, ``reason``), so
no history is read for a list.
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.engine.state import is_finished
from keel.runtime.views.activity import run_activity
from keel.server.dashboard.rendering import fragment
from keel.server.dashboard.run_filters import RunFilters
from keel.store.protocol import Store
from keel.store.records import RunRecord


@dataclass(frozen=True, slots=True)
class Row:
    run: RunRecord
    ended: bool
    #: ended: from its start to its last change; not ended: so far
    duration: float
    #: what it is doing (not ended) or why it ended (failed, cancelled); one line
    doing: str | None
    #: the activity's kind (running, queued, waiting, stalled, paused), for its style
    kind: str | None
    #: False: the run is on the page but its change took it out of the filters
    matches: bool

    @property
    def dom_id(self) -> str:
        return dom_id(self.run.id)


def dom_id(run_id: str) -> str:
    """The id of a run's row in the page (what a live patch replaces)."""
    return f"run-{run_id}"


def _ended_words(run: RunRecord) -> str | None:
    """Why a run ended other than well: its failing node, the error's type, the reason."""
    said = []
    if run.failed_node:
        said.append(f"at {run.failed_node}")
    if run.error_type:
        said.append(run.error_type)
    text = ": ".join(said)
    if run.reason:
        text = f"{text} — {run.reason}" if text else run.reason
    return text or None


def row_of(store: Store, run: RunRecord, now: float, filters: RunFilters) -> Row:
    ended = is_finished(run.status)
    if ended:
        doing, kind = (None if run.status == "succeeded" else _ended_words(run)), None
    else:
        activity = run_activity(store, run, now)
        doing, kind = (None, None) if activity is None else (activity.text, activity.kind)
    duration = (run.updated_at if ended else now) - run.created_at
    return Row(run, ended, max(duration, 0.0), doing, kind, filters.matches(run))


def row_html(row: Row) -> str:
    return fragment("runs_row.html", row=row)

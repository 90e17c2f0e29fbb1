"""The runs list, live (``/ui/live/runs``): the list page's one stream.

The page never reflows under the reader: the rows it drew stay (``rows``: their ids),
and when one of those runs changes its row is sent again (a ``patch``), re-read from the
store; a run the change took out of the filters says so in its row rather than vanish.
A run not on the page that now matches the filters and would be listed on this page if
it were drawn again (newer than the page's last row, ``bottom``, and older than its
cursor, ``top``) is announced in a ``runs`` event: the page offers to show them ("N new
or changed runs match — show"), it does not insert them. An event names at most
``MOST_IDS`` runs and counts the others (``more``): the page only says how many.

What the change feed says of a run (its workflow, status, late flag and creation time)
places it and rules most runs out without reading them; a run is read (``get_run``, a
primary-key read) only when it is on the page or a filter the feed does not tell
(version, started by, error type, failed node) must be checked. Brought up to date whole
(a reconnect, a stream far behind the feed), the page's rows are read again and its
place in the list listed again (one read of at most a page) for the runs to announce.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse

from keel.errors import RunNotFoundError
from keel.server.dashboard.live import Event, Follow, stream
from keel.server.dashboard.pages.runs_list import PAGE
from keel.server.dashboard.run_filters import FilterError, Key, RunFilters, parse, parse_key
from keel.server.dashboard.run_rows import row_html, row_of
from keel.server.dashboard.sessions import Reading
from keel.server.service import Service, service
from keel.store.records import RunChange

router = APIRouter(include_in_schema=False)
Served = Annotated[Service, Depends(service)]

_RUN_ID = re.compile(r"^[0-9A-Za-z_.:-]{1,100}$")
#: the most runs a ``runs`` event names (the others are counted)
MOST_IDS = 50


def _rows(text: str) -> list[str]:
    ids = [part for part in text.split(",") if part]
    if len(ids) > PAGE or not all(_RUN_ID.match(run_id) for run_id in ids):
        raise FilterError("rows", f"at most {PAGE} run ids, separated by commas")
    return ids


def _told(filters: RunFilters) -> bool:
    """Whether what the feed tells of a run (``RunChange``) decides these filters."""
    return (filters.version, filters.started_by, filters.error_type, filters.node) == (
        None, None, None, None)  # fmt: skip


def follower(
    served: Service, filters: RunFilters, rows: list[str], top: Key | None, bottom: Key | None
) -> Follow:
    """What a change means to a page with ``rows`` drawn (see the module's docstring)."""
    store = served.store
    shown = set(rows)
    told = _told(filters)

    def listed_here(created_at: float, run_id: str) -> bool:
        key = (-created_at, run_id)  # the list's order: newest first, then by id
        return (top is None or key > (-top[0], top[1])) and (
            bottom is None or key <= (-bottom[0], bottom[1])
        )

    def may_be_fresh(change: RunChange) -> bool:
        """Not on the page, and may now match and be listed here (no read)."""
        created = change.created_at
        return (
            change.id not in shown
            and filters.may_match(change.workflow, change.status, change.late)
            and (filters.created_after is None or created >= filters.created_after)
            and (filters.created_before is None or created < filters.created_before)
            and listed_here(created, change.id)
        )

    def patched(run_ids: Sequence[str], now: float) -> list[dict[str, str]]:
        patches = []
        for run_id in run_ids:
            try:
                run = store.get_run(run_id)
            except RunNotFoundError:
                continue
            row = row_of(store, run, now, filters)
            patches.append({"id": row.dom_id, "html": row_html(row)})
        return patches

    def listed_again() -> list[str]:
        """The runs that would be on the page now and are not (one read of a page)."""
        found = store.list_runs(**filters.query(), cursor=top, limit=PAGE)
        return [run.id for run in found
                if run.id not in shown and listed_here(run.created_at, run.id)]  # fmt: skip

    def follow(changes: Sequence[RunChange] | None) -> list[Event]:
        now = served.clock.now()
        if changes is None:  # brought up to date whole: every row, and what to announce
            patches, fresh = patched(rows, now), listed_again()
        else:
            latest = {change.id: change for change in changes}  # a run's last change
            patches = patched([run_id for run_id in latest if run_id in shown], now)
            fresh = []
            for change in latest.values():
                if not may_be_fresh(change):
                    continue
                if told:
                    fresh.append(change.id)
                    continue
                try:
                    run = store.get_run(change.id)
                except RunNotFoundError:
                    continue
                if filters.matches(run):
                    fresh.append(run.id)
        events = []
        if patches:
            events.append(Event("patch", {"items": patches}))
        if fresh:
            events.append(Event("runs", {"ids": fresh[:MOST_IDS],
                                         "more": max(0, len(fresh) - MOST_IDS)}))  # fmt: skip
        return events

    return follow


@router.get("/ui/live/runs")
def live_runs(request: Request, viewer: Reading, served: Served) -> StreamingResponse:
    """The runs list's stream: its rows patched, new matching runs announced."""
    params = request.query_params
    try:
        filters = parse(params)
        rows = _rows(params.get("rows", ""))
        top, bottom = parse_key(params, "top"), parse_key(params, "bottom")
    except FilterError as problem:
        raise HTTPException(400, str(problem)) from None
    return stream(request, served.store, follower(served, filters, rows, top, bottom))

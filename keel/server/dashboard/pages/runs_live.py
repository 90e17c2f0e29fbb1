"""The runs list, live (``/ui/live/runs``): the list page's one stream.

The page never reflows under the reader: the rows it drew stay (``rows``: their ids),
and when one of those runs changes its row is sent again (a ``patch``), re-read from the
store; a run the change took out of the filters says so in its row rather than vanish.
A run not on the page that now matches the filters and would be listed on this page if
it were drawn again (newer than the page's last row, ``bottom``, and older than its
cursor, ``top``) is announced by id in a ``runs`` event: the page offers to show them
("N new or changed runs match — show"), it does not insert them.

What the change feed says of a run (its workflow, status, late flag) rules most runs out
without reading them; the rest are read one by one (``get_run``, a primary-key read).
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
from keel.store.records import RunChange, RunRecord

router = APIRouter(include_in_schema=False)
Served = Annotated[Service, Depends(service)]

_RUN_ID = re.compile(r"^[0-9A-Za-z_.:-]{1,100}$")


def _rows(text: str) -> list[str]:
    ids = [part for part in text.split(",") if part]
    if len(ids) > PAGE or not all(_RUN_ID.match(run_id) for run_id in ids):
        raise FilterError("rows", f"at most {PAGE} run ids, separated by commas")
    return ids


def follower(
    served: Service, filters: RunFilters, rows: list[str], top: Key | None, bottom: Key | None
) -> Follow:
    """What a change means to a page with ``rows`` drawn (see the module's docstring)."""
    store = served.store
    shown = set(rows)

    def listed_here(run: RunRecord) -> bool:
        key = (-run.created_at, run.id)  # the list's order: newest first, then by id
        return (top is None or key > (-top[0], top[1])) and (
            bottom is None or key <= (-bottom[0], bottom[1])
        )

    def follow(changes: Sequence[RunChange] | None) -> list[Event]:
        now = served.clock.now()
        patches: list[dict[str, str]] = []
        fresh: list[str] = []
        # a reconnect: the rows are drawn again whole (what follows is read from the feed)
        changed = rows if changes is None else [change.id for change in changes]
        hints = {} if changes is None else {change.id: change for change in changes}
        for run_id in dict.fromkeys(changed):
            hint = hints.get(run_id)
            if run_id not in shown and (
                hint is None or not filters.may_match(hint.workflow, hint.status, hint.late)
            ):
                continue
            try:
                run = store.get_run(run_id)
            except RunNotFoundError:
                continue
            if run_id in shown:
                row = row_of(store, run, now, filters)
                patches.append({"id": row.dom_id, "html": row_html(row)})
            elif filters.matches(run) and listed_here(run):
                fresh.append(run_id)
        events = []
        if patches:
            events.append(Event("patch", {"items": patches}))
        if fresh:
            events.append(Event("runs", {"ids": fresh}))
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

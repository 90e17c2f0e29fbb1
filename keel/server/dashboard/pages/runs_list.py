"""The runs list (``/ui/runs``): runs newest first, filtered by the store, 50 a page by
cursor, with the counts by status in a request of their own (``/ui/runs/counts``), so
the list answers as fast over 100,000 runs as over 100 and the counts follow.

Every filter is in the URL (a plain GET form), so every link the page draws (a count,
the next page, a bulk action) keeps them, and a filtered list can be bookmarked. The
counts are the store's count of the same selection, per status (the status filter
aside: each count is what its link lists), so a count never disagrees with its list.
The page follows its runs live over ``/ui/live/runs`` (``runs_live``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import QueryParams

from keel.server.dashboard.live import newest, position_text
from keel.server.dashboard.rendering import fragment, page
from keel.server.dashboard.run_filters import (
    STATUSES,
    FilterError,
    RunFilters,
    key_text,
    parse,
    parse_key,
)
from keel.server.dashboard.run_rows import row_of
from keel.server.dashboard.sessions import Reading
from keel.server.service import Service, service

router = APIRouter(include_in_schema=False)
Served = Annotated[Service, Depends(service)]

#: runs a page
PAGE = 50
#: the form's fields, in order: URL name, label, input type
FIELDS = (("status", "status", "select"), ("workflow", "workflow", "text"),
          ("version", "version", "text"), ("created_after", "created after (UTC)", "datetime"),
          ("created_before", "created before (UTC)", "datetime"),
          ("ended_after", "ended after (UTC)", "datetime"),
          ("ended_before", "ended before (UTC)", "datetime"),
          ("error_type", "error type", "text"), ("node", "failed node", "text"),
          ("started_by", "started by", "text"), ("late", "late", "late"))  # fmt: skip


def _raw(params: QueryParams) -> dict[str, str]:
    """What the viewer typed, to show it again in the form beside its problem."""
    return {name: params.get(name, "")[:300] for name, _, _ in FIELDS}


@router.get("/ui/runs", response_class=HTMLResponse)
def runs(request: Request, viewer: Reading, served: Served) -> HTMLResponse:
    store = served.store
    workflows = sorted({d.workflow for d in store.deployments()})
    common: dict[str, Any] = {"fields": FIELDS, "statuses": STATUSES, "workflows": workflows}
    try:
        filters = parse(request.query_params)
        cursor = parse_key(request.query_params, "cursor")
    except FilterError as problem:
        return page(request, "runs_list.html", viewer, status=400, problem=str(problem),
                    problem_field=problem.field, form=_raw(request.query_params),
                    filters=RunFilters(), rows=[], older=None, newest_url=None,
                    counts_url=None, live=None, here="/ui/runs", **common)  # fmt: skip
    start = position_text(newest(store))  # before the read: nothing after it is missed
    records = store.list_runs(**filters.query(), cursor=cursor, limit=PAGE + 1)
    shown = records[:PAGE]
    now = served.clock.now()
    rows = [row_of(store, run, now, filters) for run in shown]
    last = (shown[-1].created_at, shown[-1].id) if len(records) > PAGE else None
    live = filters.url("/ui/live/runs", rows=",".join(run.id for run in shown),
                       top=None if cursor is None else key_text(cursor),
                       bottom=None if last is None else key_text(last),
                       **{"from": start or None})  # fmt: skip
    here = filters.url(cursor=None if cursor is None else key_text(cursor))
    return page(request, "runs_list.html", viewer, problem=None, problem_field=None,
                form=filters.params(), filters=filters, rows=rows,
                older=None if last is None else filters.url(cursor=key_text(last)),
                newest_url=None if cursor is None else filters.url(),
                counts_url=filters.url("/ui/runs/counts"), live=live, here=here,
                **common)  # fmt: skip


@router.get("/ui/runs/counts", response_class=HTMLResponse)
def counts(request: Request, viewer: Reading, served: Served) -> HTMLResponse:
    """The counts by status of the list's selection (an htmx part of the list page)."""
    try:
        filters = parse(request.query_params)
    except FilterError as problem:
        return HTMLResponse(fragment("runs_counts.html", problem=str(problem), counts={},
                                     total=0, links={}, all_url="", filters=RunFilters()),
                            status_code=400)  # fmt: skip
    found = served.store.count_runs(**filters.but(status=None).query())
    counted = {status: found.get(status, 0) for status in STATUSES}
    links = {status: filters.but(status=status).url() for status in STATUSES}
    body = fragment("runs_counts.html", problem=None, counts=counted,
                    total=sum(counted.values()), links=links,
                    all_url=filters.but(status=None).url(), filters=filters)  # fmt: skip
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})

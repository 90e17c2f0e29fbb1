"""Bulk actions on the runs list: cancel, or retry, every run the list's filters select
(``keel.server.dashboard.bulk``), for who may act.

Two steps: the preview (``GET /ui/runs/bulk?action=...&<filters>``) says how many runs
the action would touch and shows the first few, and asks why; the action
(``POST /ui/runs/bulk``, the same filters in the form) acts on every one of them (up to
``CAP``), each recorded as done by the signed-in viewer with that reason, and answers
with a report of every run: done, refused by the operation (its words), or skipped.

When more than ``CAP`` match, one post acts on the newest ``CAP`` and the report offers
to run it again for the rest: the runs acted on no longer match (a cancelled run is not
"not ended", a retried one not "failed"), so the next post takes the next ones. The
cap keeps one request short enough for a proxy's timeout; what it does not give is a
job that goes on without the page (a durable bulk job is not built).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from keel.server.dashboard import bulk
from keel.server.dashboard.rendering import page
from keel.server.dashboard.run_actions import reason_problem
from keel.server.dashboard.run_filters import LABELS, FilterError, RunFilters, parse
from keel.server.dashboard.run_rows import row_of
from keel.server.dashboard.sessions import Acting, Viewer
from keel.server.service import Service, service

router = APIRouter(include_in_schema=False)
Served = Annotated[Service, Depends(service)]

#: the runs the preview shows
FIRST = 10
#: the longest reason kept (it goes into each run's history)
MAX_REASON = 1000


def _action(params: Mapping[str, str]) -> bulk.Action:
    found = bulk.ACTIONS.get(params.get("action", ""))
    if found is None:
        raise HTTPException(400, f"action: use one of {', '.join(bulk.ACTIONS)}")
    return found


def _filters(params: Mapping[str, str]) -> RunFilters:
    try:
        return parse(params)
    except FilterError as problem:
        raise HTTPException(400, f"{problem} (go back to the runs list and fix it)") from None


def _described(filters: RunFilters) -> list[tuple[str, str]]:
    return [(LABELS[name], value) for name, value in filters.params().items()]


def _preview(
    request: Request,
    viewer: Viewer,
    served: Service,
    action: bulk.Action,
    filters: RunFilters,
    *,
    reason: str = "",
    problem: str | None = None,
) -> HTMLResponse:
    store = served.store
    total = bulk.count(store, filters, action)
    now = served.clock.now()
    first = [row_of(store, run, now, filters) for run in bulk.select(store, filters, action, FIRST)]
    return page(request, "runs_bulk.html", viewer, status=400 if problem else 200,
                action=action, filters=filters, described=_described(filters), total=total,
                acted_on=min(total, bulk.CAP), cap=bulk.CAP, first=first, reason=reason,
                problem=problem, back=filters.url())  # fmt: skip


@router.get("/ui/runs/bulk", response_class=HTMLResponse)
def preview(request: Request, viewer: Acting, served: Served) -> HTMLResponse:
    """How many runs the action would touch, the first few, and a reason to give."""
    params = request.query_params
    return _preview(request, viewer, served, _action(params), _filters(params))


@router.post("/ui/runs/bulk", response_class=HTMLResponse)
async def act(request: Request, viewer: Acting, served: Served) -> HTMLResponse:
    """Act on every run the filters select (up to ``CAP``) and report each."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    action, filters = _action(form), _filters(form)
    reason = form.get("reason", "").strip()
    problem = reason_problem(reason, MAX_REASON)
    if problem is not None:
        return await run_in_threadpool(_preview, request, viewer, served, action, filters,
                                       reason=reason[:MAX_REASON], problem=problem)  # fmt: skip

    def run() -> tuple[int, list[bulk.Outcome]]:
        store = served.store
        total = bulk.count(store, filters, action)
        runs = bulk.select(store, filters, action)
        return total, bulk.perform(store, filters, action, runs, by=viewer.name, reason=reason,
                                   clock=served.clock)  # fmt: skip

    total, outcomes = await run_in_threadpool(run)
    left = max(total - len(outcomes), 0) if len(outcomes) >= bulk.CAP else 0
    tally = Counter(outcome.result for outcome in outcomes)
    order = {"refused": 0, "skipped": 1, "done": 2}
    listed = sorted(outcomes, key=lambda o: order[o.result])  # stable: newest first in each
    return page(request, "runs_bulk_report.html", viewer, action=action, filters=filters,
                described=_described(filters), outcomes=listed, tally=tally, reason=reason,
                total=total, left=left, cap=bulk.CAP, back=filters.url())  # fmt: skip

"""Workflows (``/ui/workflows``): the deployed workflows with their current version,
and a workflow's page (``/ui/workflows/{name}``): its versions with who deployed them
and when, the graph of a version (laid out once per version on the server,
``keel.spec.layout``), the diff between two versions, its triggers with their next fire
times, and its recent runs as a grid of nodes by runs; for those who may act, a form
to start a run of the version shown (``start_form``), posted to
``/ui/workflows/{name}/start``: a refusal draws the page again with the problems at
their fields, a run started leads to its page (post, redirect, get).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from keel.errors import WorkflowNotFoundError
from keel.runtime.operations.deployed import deployed
from keel.runtime.triggers.schedule_views import schedule_documents
from keel.runtime.views.documents import workflows_document
from keel.runtime.views.run_grid import RECENT, run_grid
from keel.server.dashboard.flash import clear_flash, read_flash, set_flash
from keel.server.dashboard.links import run_url, runs_url
from keel.server.dashboard.rendering import page
from keel.server.dashboard.sessions import Acting, Reading, Viewer
from keel.server.dashboard.start_form import VERSION, StartDraft, start_form, start_from_form
from keel.server.dashboard.times import iso
from keel.server.dashboard.workflow_parts import (
    cell_state,
    cell_title,
    find_version,
    trigger_rows,
    versions_of,
)
from keel.server.dashboard.yaml_diff import yaml_diff
from keel.server.service import Service, service
from keel.spec.layout import layout_of

router = APIRouter(include_in_schema=False)

Served = Annotated[Service, Depends(service)]
VersionQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[0-9a-f]*$")]

#: the most nodes the grid shows as rows
GRID_ROWS = 300


@router.get("/ui/workflows", response_class=HTMLResponse)
def workflows(request: Request, viewer: Reading, served: Served) -> HTMLResponse:
    found = workflows_document(served.store)
    return page(request, "workflows.html", viewer, workflows=found, runs_url=runs_url)


@router.get("/ui/workflows/{name}", response_class=HTMLResponse)
def workflow(
    request: Request,
    name: str,
    viewer: Reading,
    served: Served,
    version: VersionQuery = None,
    old: Annotated[str | None, Query(alias="from", max_length=64, pattern=r"^[0-9a-f]*$")] = None,
    new: Annotated[str | None, Query(alias="to", max_length=64, pattern=r"^[0-9a-f]*$")] = None,
) -> HTMLResponse:
    return _draw(request, viewer, served, name, version, old, new)


def _draw(
    request: Request, viewer: Viewer, served: Service, name: str, version: str | None,
    old: str | None = None, new: str | None = None, draft: StartDraft | None = None,
    status: int = 200,
) -> HTMLResponse:  # fmt: skip
    """The workflow's page, showing ``version`` (default: the current one); ``draft``:
    a start form the server refused, drawn again with its problems."""
    store, plans = served.store, served.plans
    versions = versions_of(store.deployments(name))
    if not versions:
        raise WorkflowNotFoundError(f"no workflow named '{name}' is deployed")
    shown = find_version(versions, version or None)
    if shown is None:
        raise WorkflowNotFoundError(f"workflow '{name}' has no deployed version {version}")
    spec = plans.plan(shown.version).spec
    diff: dict[str, Any] | None = None
    if len(versions) > 1:
        place = [v.version for v in versions].index(shown.version)
        # by default: the version shown against the one before it (the first: after it)
        pair = (versions[place - 1], shown) if place > 0 else (shown, versions[1])
        before = find_version(versions, old) if old else pair[0]
        after = find_version(versions, new) if new else pair[1]
        if before is None or after is None:
            raise WorkflowNotFoundError(f"workflow '{name}' has no deployed version "
                                        f"{old if before is None else new}")  # fmt: skip
        lines = yaml_diff(plans.plan(before.version).spec, plans.plan(after.version).spec)
        diff = {"old": before, "new": after, "lines": lines}
    current = next(v for v in versions if v.current)
    now = served.clock.now()
    schedules = [doc for doc in schedule_documents(store, plans, now) if doc["workflow"] == name]
    triggers = trigger_rows(plans.plan(current.version).spec, schedules)
    grid = run_grid(store, name, plans.plan, limit=RECENT)
    start = start_form(spec, draft) if viewer.may("act") else None
    answer = page(
        request, "workflow.html", viewer, status=status, workflow=name, versions=versions,
        shown=shown, current=current, spec=spec, elements=layout_of(spec).to_cytoscape(),
        diff=diff, triggers=triggers, grid=grid, grid_rows=grid.rows[:GRID_ROWS],
        cell_state=cell_state, cell_title=cell_title, runs_url=runs_url, run_url=run_url,
        iso=iso, start=start, flash=read_flash(request),
    )  # fmt: skip
    clear_flash(request, answer)  # the editor's "deployed" message: shown once
    return answer


@router.post("/ui/workflows/{name}/start")
async def start_run_page(request: Request, name: str, viewer: Acting, served: Served) -> Response:
    """Start a run of ``name`` (the form's version, default the current one) with the
    form's input, as the signed-in viewer; then its page. A refusal: this page again,
    each problem at its field, every value kept (422)."""
    form = await request.form()
    draft = StartDraft.of(form, {key: form.getlist(key) for key in form})
    chosen = form.get(VERSION)
    version = chosen if isinstance(chosen, str) and chosen else None
    return await run_in_threadpool(_start, request, viewer, served, name, version, draft)


def _start(
    request: Request, viewer: Viewer, served: Service, name: str, version: str | None,
    draft: StartDraft,
) -> Response:  # fmt: skip
    deployment = deployed(served.store, name, version)  # not deployed: a 404 page
    spec = served.plans.plan(deployment.version).spec
    found = start_from_form(served.store, spec, draft, by=viewer.name, plans=served.plans,
                            clock=served.clock)  # fmt: skip
    if found is None:
        return _draw(request, viewer, served, name, deployment.version, draft=draft, status=422)
    record = found.record
    answer = RedirectResponse(run_url(record.id), status_code=303)
    if found.started:
        text = f"Started run {record.id[:8]} of {name} (version {spec.version[:12]})."
    else:
        text = (f"Idempotency key '{draft.key}' had started run {record.id[:8]} already: "
                "no new run was started.")  # fmt: skip
    set_flash(answer, request, "done", text)
    return answer

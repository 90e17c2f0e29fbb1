"""The approvals inbox (``/ui/approvals``): what waits for a decision, in three tabs
(mine, my groups, all), each approval with its description as filled in from upstream
data, its due time (overdue ones stand out), and a form drawn from its JSON Schema.

Deciding posts the form (post, redirect, get): the data is checked here as the approve
operation checks it, and a problem is shown at its field with every value kept; then
the operation (``keel.runtime.operations.interventions``) records the decision as the
signed-in viewer, checking again, inside its transaction, that they may decide it. The
page follows the store over the tab's live stream: an approval decided elsewhere
leaves the list, a new one joins it, and what a person is typing is kept. A tab lists
its oldest ``inbox.PAGE`` approvals, and ``limit`` more ("more" adds a page).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from keel.errors import ForbiddenError, InputError, KeelError, RunNotFoundError
from keel.runtime.operations.inputs import with_schema_defaults
from keel.runtime.operations.interventions import approve, reject
from keel.server.dashboard import live
from keel.server.dashboard.flash import clear_flash, read_flash, set_flash
from keel.server.dashboard.inbox import (
    MOST,
    PAGE,
    TABS,
    Inbox,
    Item,
    Tab,
    inbox,
    may_matter,
    waiting,
)
from keel.server.dashboard.rendering import fragment, page
from keel.server.dashboard.schema_form import check, read_form
from keel.server.dashboard.sessions import Deciding, Reading, Viewer
from keel.server.policies import decider_check
from keel.server.service import Service, service
from keel.store.records import RunChange

router = APIRouter(include_in_schema=False)

Served = Annotated[Service, Depends(service)]
TabQuery = Annotated[Tab | None, Query(description="mine, groups or all")]
LimitQuery = Annotated[int, Query(ge=1, le=MOST, description="approvals listed at most")]
#: the longest comment taken (the page's text area says so too)
MOST_COMMENT = 4000


@dataclass
class Draft:
    """What a person sent for one approval, shown again with the problems found."""

    values: dict[str, list[str]]
    comment: str
    errors: dict[str, str] = field(default_factory=dict)


def _tab(text: str | None) -> Tab | None:
    return next((tab for tab in TABS if tab == text), None)


def _draw(
    request: Request,
    viewer: Viewer,
    served: Service,
    tab: Tab | None,
    drafts: dict[str, Draft],
    status: int = 200,
    limit: int = PAGE,
) -> Response:
    store = served.store
    stream = live.live_url("/ui/approvals/live", store)  # before reading: nothing missed
    box = inbox(waiting(store), viewer.identity, tab, served.clock.now(), limit)
    joiner = "&" if "?" in stream else "?"
    listed = {"tab": box.tab, **({"limit": str(limit)} if limit != PAGE else {})}
    answer = page(request, "approvals.html", viewer, status=status, box=box, tabs=TABS,
                  drafts=drafts, flash=read_flash(request),
                  live=f"{stream}{joiner}{urlencode(listed)}")  # fmt: skip
    clear_flash(request, answer)
    return answer


@router.get("/ui/approvals")
def approvals_page(
    request: Request, viewer: Reading, served: Served, tab: TabQuery = None,
    limit: LimitQuery = PAGE,
) -> Response:  # fmt: skip
    return _draw(request, viewer, served, tab, {}, limit=limit)


def _items(box: Inbox, viewer: Viewer) -> list[dict[str, str]]:
    return [{"id": item.dom_id, "key": item.key,
             "html": fragment("approval_item.html", item=item, viewer=viewer, tab=box.tab,
                              draft=None)}
            for item in box.items]  # fmt: skip


def _follower(served: Service, viewer: Viewer, tab: Tab, limit: int = PAGE) -> live.Follow:
    """The inbox's view of the store's changes: the approvals read again only for a
    change that may matter to them (``may_matter``), and the list sent again when what
    it shows changed (the page keeps the approvals it has, and what is typed into
    them)."""
    sent: list[tuple[Any, ...]] = []
    waiting_runs: set[str] = set()  # the runs with an approval waiting, as last read

    def follow(changes: Sequence[RunChange] | None) -> list[live.Event]:
        store = served.store
        if changes is not None and sent:
            latest = {change.id: change for change in changes}.values()
            if not any(may_matter(store, change, waiting_runs) for change in latest):
                return []
        waits = waiting(store)
        waiting_runs.clear()
        waiting_runs.update(wait.run_id for wait in waits)
        box = inbox(waits, viewer.identity, tab, served.clock.now(), limit)
        if changes is not None and sent and box.signature == sent[0]:
            return []
        sent[:] = [box.signature]
        tabs = fragment("approvals_tabs.html", box=box, tabs=TABS)
        more = fragment("approvals_more.html", box=box)
        return [live.Event("approvals", {"tabs": tabs, "items": _items(box, viewer),
                                         "more": more})]  # fmt: skip

    return follow


@router.get("/ui/approvals/live")
def approvals_live(
    request: Request, viewer: Reading, served: Served, tab: TabQuery = None,
    limit: LimitQuery = PAGE,
) -> StreamingResponse:  # fmt: skip
    """The inbox's live stream (``approvals`` events: the tab counts and the list)."""
    return live.stream(request, served.store, _follower(served, viewer, tab or "all", limit))


def _waiting_item(served: Service, viewer: Viewer, run_id: str, node: str) -> Item | None:
    """The approval as the inbox shows it, if it still waits (its form, its deciders)."""
    box = inbox(served.store.waits(waits_for="approval", run_id=run_id), viewer.identity,
                "all", served.clock.now())  # fmt: skip
    return next((item for item in box.items if item.wait.node == node), None)


def _not_waiting(served: Service, run_id: str, node: str) -> str:
    served.store.get_run(run_id)  # RunNotFoundError: a 404 page
    return (f"approval '{node}' of run {run_id[:8]} is not waiting for a decision any more "
            "(decided already, or its run ended)")  # fmt: skip


def _back(request: Request, tab: str | None, kind: str, text: str) -> Response:
    query = f"?{urlencode({'tab': tab})}" if _tab(tab) else ""
    answer = RedirectResponse(f"/ui/approvals{query}", status_code=303)
    set_flash(answer, request, "done" if kind == "done" else "problem", text)
    return answer


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


@router.post("/ui/approvals/{run_id}/{node}/approve")
async def approve_page(
    request: Request, run_id: str, node: str, viewer: Deciding, served: Served
) -> Response:
    """Approve with the form's data, checked as the operation checks it; a problem
    shows the form again at its field, with what was typed."""
    form = await request.form()
    tab = _tab(_text(form, "tab"))
    comment = _text(form, "comment")[:MOST_COMMENT]
    values = {name: [v for v in form.getlist(name) if isinstance(v, str)]
              for name in form if name.startswith("data")}  # fmt: skip
    item = await run_in_threadpool(_waiting_item, served, viewer, run_id, node)
    if item is None:
        problem = await run_in_threadpool(_not_waiting, served, run_id, node)
        return _back(request, tab, "problem", problem)
    if not item.may_decide:
        raise ForbiddenError(f"'{viewer.name}' may not decide approval '{node}': "
                             f"{item.why_not}")  # fmt: skip
    data: Any = None
    if item.form is not None:
        reading = read_form(item.fields, values)
        errors = reading.errors
        if not errors:
            filled = with_schema_defaults(dict(item.form), reading.data)
            errors = await run_in_threadpool(check, item.form, item.fields, filled)
        if errors:
            draft = Draft(values, comment, errors)
            return await run_in_threadpool(_draw, request, viewer, served, tab,
                                           {item.dom_id: draft}, 422)  # fmt: skip
        data = reading.data

    def decide() -> None:
        approve(served.store, run_id, node, data=data, comment=comment, by=viewer.name,
                decider=decider_check(viewer.identity), clock=served.clock,
                signer=served.signing_key)  # fmt: skip

    try:
        await run_in_threadpool(decide)
    except InputError as exc:  # the operation's own check: shown at the form's head
        draft = Draft(values, comment, {"": str(exc)})
        return await run_in_threadpool(_draw, request, viewer, served, tab,
                                       {item.dom_id: draft}, 422)  # fmt: skip
    except (ForbiddenError, RunNotFoundError):
        raise
    except KeelError as exc:  # decided meanwhile, the run ended: back to the inbox
        return _back(request, tab, "problem", str(exc))
    return _back(request, tab, "done", f"approved {item.title} of run {run_id[:8]}")


@router.post("/ui/approvals/{run_id}/{node}/reject")
async def reject_page(
    request: Request, run_id: str, node: str, viewer: Deciding, served: Served
) -> Response:
    """Reject: the approval's node fails and its ``on_failure`` applies."""
    form = await request.form()
    tab = _tab(_text(form, "tab"))
    comment = _text(form, "comment")[:MOST_COMMENT]
    item = await run_in_threadpool(_waiting_item, served, viewer, run_id, node)
    if item is None:
        problem = await run_in_threadpool(_not_waiting, served, run_id, node)
        return _back(request, tab, "problem", problem)

    def decide() -> None:
        reject(served.store, run_id, node, comment=comment, by=viewer.name,
               decider=decider_check(viewer.identity), clock=served.clock,
               signer=served.signing_key)  # fmt: skip

    try:
        await run_in_threadpool(decide)
    except (ForbiddenError, RunNotFoundError):
        raise
    except KeelError as exc:
        return _back(request, tab, "problem", str(exc))
    return _back(request, tab, "done", f"rejected {item.title} of run {run_id[:8]}")

"""The run page's actions: cancel, pause, unpause, retry (the failed nodes, or from one
node) and skip a node with output, each with a reason, each recorded with the signed-in
name as ``by``; and the preview each dialog shows of what would run again.

A form posts here and is sent back to the run page (post, redirect, get) with a message
saying what was done or why it was refused. A form without a reason is refused before
anything is done, and shown again (its own page) with what was typed and what to fix.
Only ``act`` may post (``Acting``), with the session's CSRF token; the page does not
draw the buttons for anyone else. Setting an approval by hand decides it, so only its
deciders may (``keel.server.policies``, as the API).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from keel.errors import ForbiddenError, KeelError, StoreError
from keel.server.dashboard.flash import Kind, set_flash
from keel.server.dashboard.pages.run import Replaying
from keel.server.dashboard.rendering import fragment, page
from keel.server.dashboard.run_actions import (
    ACTIONS,
    MOST_REASON,
    NODE_ACTIONS,
    done_words,
    perform,
    preview,
    reason_problem,
)
from keel.server.dashboard.run_view import STEPS_FIRST, Replays, RunView, read_run
from keel.server.dashboard.sessions import Acting, Reading, Viewer
from keel.server.service import Service, service

router = APIRouter(include_in_schema=False)
Served = Annotated[Service, Depends(service)]
#: not limited here: a reason too long is refused with the form shown again
Reason = Annotated[str, Form()]
NodeField = Annotated[str, Form(max_length=500)]


def _view(served: Service, known: Replays, run_id: str) -> RunView:
    record = served.store.get_run(run_id)
    return read_run(served.store, record, served.plans.plan(record.spec_version),
                    served.clock.now(), known)  # fmt: skip


@router.get("/ui/runs/{run_id}/preview", response_class=HTMLResponse)
def preview_part(
    run_id: str, viewer: Reading, served: Served, known: Replaying,
    action: Annotated[str, Query(max_length=20)],
    node: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:  # fmt: skip
    """What ``action`` (on ``node``) would run again, for the dialog before it is sent."""
    view = _view(served, known, run_id)
    return HTMLResponse(fragment("run/preview.html", preview=preview(view, action, node or None)))


def _act(
    request: Request, served: Service, run_id: str, viewer: Viewer, action: str, *,
    reason: str, node: str | None = None, output: str | None = None,
) -> Response:  # fmt: skip
    """Do it, and go back to the run page saying what was done or why it was not; with
    no reason, nothing is done and the form comes back with what was typed."""
    problem = reason_problem(reason)
    if problem is not None:
        return _again(request, served, run_id, viewer, action, problem, reason=reason,
                      node=node, output=output)  # fmt: skip
    back = f"/ui/runs/{run_id}"
    who = viewer.identity
    try:
        record = perform(served.store, run_id, action, who=who, reason=reason.strip(),
                         clock=served.clock, node=node or None,
                         output=output or "")  # fmt: skip
    except (ForbiddenError, StoreError):  # not allowed, no such run, the store failed
        raise
    except KeelError as exc:
        return _back(request, back, "problem", f"Not done: {exc}")
    return _back(request, back, "done", done_words(action, record, node))


def _again(
    request: Request, served: Service, run_id: str, viewer: Viewer, action: str,
    problem: str, **sent: str | None,
) -> HTMLResponse:  # fmt: skip
    """The action's form alone, refused (400): what was typed, the problem, the preview."""
    view = _view(served, request.app.state.replays, run_id)
    node = sent.get("node") or None
    previews = ({} if action in NODE_ACTIONS and not node
                else {action: preview(view, action, node)})  # fmt: skip
    kept = {name: value[:MOST_REASON] if name == "reason" else value
            for name, value in sent.items() if value is not None}  # fmt: skip
    return page(request, "run_action.html", viewer, status=400, action=action,
                run_id=view.record.id, view=view, labels=ACTIONS, previews=previews,
                sent=kept, problem=problem, alone=True, most_reason=MOST_REASON,
                node_list=len(view.steps) <= STEPS_FIRST)  # fmt: skip


def _back(request: Request, to: str, kind: Kind, text: str) -> RedirectResponse:
    answer = RedirectResponse(to, status_code=303)
    set_flash(answer, request, kind, text)
    return answer


@router.post("/ui/runs/{run_id}/cancel")
def cancel(
    request: Request, run_id: str, viewer: Acting, served: Served, reason: Reason = ""
) -> Response:
    return _act(request, served, run_id, viewer, "cancel", reason=reason)


@router.post("/ui/runs/{run_id}/pause")
def pause(
    request: Request, run_id: str, viewer: Acting, served: Served, reason: Reason = ""
) -> Response:
    return _act(request, served, run_id, viewer, "pause", reason=reason)


@router.post("/ui/runs/{run_id}/unpause")
def unpause(
    request: Request, run_id: str, viewer: Acting, served: Served, reason: Reason = ""
) -> Response:
    return _act(request, served, run_id, viewer, "unpause", reason=reason)


@router.post("/ui/runs/{run_id}/retry")
def retry(
    request: Request, run_id: str, viewer: Acting, served: Served, reason: Reason = "",
    node: NodeField = "",
) -> Response:  # fmt: skip
    """Retry the failed nodes, or (``node``) that node and everything downstream of it."""
    action = "retry-node" if node.strip() else "retry"
    return _act(request, served, run_id, viewer, action, reason=reason,
                node=node.strip())  # fmt: skip


@router.post("/ui/runs/{run_id}/skip")
def skip(
    request: Request, run_id: str, viewer: Acting, served: Served, node: NodeField,
    output: Annotated[str, Form(max_length=1_000_000)] = "", reason: Reason = "",
) -> Response:  # fmt: skip
    """Set ``node`` done by hand with ``output`` (JSON), as ``keel skip``."""
    return _act(request, served, run_id, viewer, "skip", reason=reason,
                node=node.strip(), output=output)  # fmt: skip

"""The workflow editor: write a YAML definition in the browser, checked as it is typed
(every problem located by line and column, as a deploy finds them), drawn, compared
with the deployed version, and deployed as the new version.

Deploying is the administrators' (``Administering``), so the whole editor is: a role
that may not deploy has nothing to do here. A deploy goes through the API's own
function (``deploy_definition``), recorded with the signed-in name and the time.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from keel.errors import KeelError
from keel.server.dashboard.definition_check import Checked, Problem, check_definition
from keel.server.dashboard.definition_start import (
    TEMPLATES,
    Start,
    from_deployed,
    from_template,
)
from keel.server.dashboard.rendering import fragment, page
from keel.server.dashboard.sessions import Administering, Viewer, cookie_secure
from keel.server.routes.workflows import MOST_CHARACTERS, deploy_definition
from keel.server.service import Service, service
from keel.store.deployments import current_versions

router = APIRouter(include_in_schema=False)

Served = Annotated[Service, Depends(service)]
Definition = Annotated[str, Form(max_length=MOST_CHARACTERS)]
#: the template an editor opened with no choice starts from
FIRST_TEMPLATE = "chain"
#: the one-time message cookie the page after a redirect shows (``flash``)
FLASH_COOKIE = "keel_flash"


@router.get("/ui/editor", response_class=HTMLResponse)
def editor(
    request: Request,
    viewer: Administering,
    served: Served,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    template: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """The editor, starting from a deployed workflow (``workflow``) or a template."""
    if workflow:
        start = from_deployed(served, workflow)
    else:
        chosen = template or FIRST_TEMPLATE
        if chosen not in TEMPLATES:
            raise HTTPException(404, f"no template named '{chosen}' (templates: "
                                f"{', '.join(TEMPLATES)})")  # fmt: skip
        start = from_template(chosen)
    checked = check_definition(served, start.text) if start.editable else Checked()
    return _page(request, viewer, served, start, start.text, checked, workflow, template)


@router.post("/ui/editor/check")
def check(viewer: Administering, served: Served, definition: Definition = "") -> Response:
    """What the page shows of the text as it is typed: the problems (or the versions
    and the diff) as HTML, and the graph's elements when it is valid."""
    checked = check_definition(served, definition)
    body = {
        "valid": checked.valid,
        "problems": len(checked.problems),
        "html": fragment("editor_check.html", checked=checked),
        "elements": checked.elements,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post("/ui/editor/deploy", response_class=HTMLResponse)
def deploy(
    request: Request, viewer: Administering, served: Served, definition: Definition = ""
) -> Response:
    """Deploy the text as its workflows' new current versions, then go to the (first)
    workflow's page; an invalid text comes back with its problems, as typed."""
    try:
        done = deploy_definition(served, definition, by=viewer.name, source="editor")
    except KeelError as exc:
        checked = check_definition(served, definition)
        if checked.valid:  # valid a moment ago; something changed since (a conflict)
            checked = Checked(problems=(Problem(str(exc)),))
        start = Start(definition, "Not deployed: fix the problems below and deploy again.")
        return _page(request, viewer, served, start, definition, checked, None, None,
                     status=422)  # fmt: skip
    first = done[0]
    names = ", ".join(f"{d.workflow} version {d.version[:12]}" for d in done)
    answer = RedirectResponse(f"/ui/workflows/{quote(first.workflow, safe='')}", status_code=303)
    _flash(request, answer, f"Deployed {names} (now current), by {viewer.name}.")
    return answer


def _page(
    request: Request,
    viewer: Viewer,
    served: Served,
    start: Start,
    text: str,
    checked: Checked,
    workflow: str | None,
    template: str | None,
    *,
    status: int = 200,
) -> Response:
    deployed = sorted(current_versions(served.store.deployments()))
    return page(request, "editor.html", viewer, status=status, start=start, text=text,
                checked=checked, templates=TEMPLATES, deployed=deployed,
                workflow=workflow, template=template)  # fmt: skip


def _flash(request: Request, answer: Response, text: str) -> None:
    """A one-time message for the page the redirect leads to (post, redirect, get): in
    a short-lived cookie, not the URL, so a link cannot make a page claim a deploy.
    (The format the dashboard's flash messages share: base64 JSON, kind and text.)"""
    body = json.dumps({"kind": "done", "text": text[:1000]}).encode()
    answer.set_cookie(FLASH_COOKIE, base64.urlsafe_b64encode(body).decode(), max_age=60,
                      path="/ui", httponly=True, secure=cookie_secure(request),
                      samesite="lax")  # fmt: skip

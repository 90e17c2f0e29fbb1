"""Sign in with a token, sign out. See ``keel.server.dashboard.sessions`` for what a
session is and how it is protected."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from keel.server.dashboard.rendering import page
from keel.server.dashboard.sessions import (
    COOKIE,
    FORM_COOKIE,
    SESSION_SECONDS,
    Reading,
    Sessions,
    csrf_for,
    safe_next,
)
from keel.server.guard import Access
from keel.server.identities import hash_secret

router = APIRouter(include_in_schema=False)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _form(request: Request, next_path: str, problem: str | None, status: int) -> Response:
    """The sign-in form, with a fresh double-submit cookie."""
    secret = secrets.token_urlsafe(24)
    answer = page(request, "sign_in.html", None, status=status, next_path=safe_next(next_path),
                  csrf=csrf_for(secret), problem=problem)  # fmt: skip
    answer.set_cookie(FORM_COOKIE, secret, max_age=3600, path="/ui", httponly=True,
                      secure=_secure(request), samesite="strict")  # fmt: skip
    return answer


@router.get("/ui/sign-in", response_class=HTMLResponse)
def sign_in_form(
    request: Request, next_path: Annotated[str, Query(alias="next", max_length=2000)] = "/ui/"
) -> Response:
    return _form(request, next_path, None, 200)


@router.post("/ui/sign-in", response_class=HTMLResponse)
async def sign_in(
    request: Request,
    token: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/ui/",
) -> Response:
    """A usable token starts a session; anything else shows the form again, saying why
    (the same words for an unknown, revoked or expired token: nothing to probe)."""
    form_secret = request.cookies.get(FORM_COOKIE, "")
    if not form_secret or not secrets.compare_digest(csrf, csrf_for(form_secret)):
        return _form(request, next_path, "The form had expired: please sign in again.", 403)
    access: Access = request.app.state.access
    sessions: Sessions = request.app.state.sessions
    now = access.clock()
    token = token.strip()
    who = await run_in_threadpool(access.tokens.identity, token, now)
    if who is None:
        return _form(request, next_path, "That token is unknown, revoked or expired. Make one "
                     "with: keel token create NAME --role ROLE", 401)  # fmt: skip
    secret = await run_in_threadpool(sessions.start, hash_secret(token), now)
    answer = RedirectResponse(safe_next(next_path), status_code=303)
    answer.set_cookie(COOKIE, secret, max_age=SESSION_SECONDS, path="/ui", httponly=True,
                      secure=_secure(request), samesite="lax")  # fmt: skip
    answer.delete_cookie(FORM_COOKIE, path="/ui")
    return answer


@router.post("/ui/sign-out")
async def sign_out(request: Request, viewer: Reading) -> Response:
    sessions: Sessions = request.app.state.sessions
    secret = request.cookies.get(COOKIE)
    if secret:
        await run_in_threadpool(sessions.end, secret)
    answer = RedirectResponse("/ui/sign-in", status_code=303)
    answer.delete_cookie(COOKIE, path="/ui")
    return answer

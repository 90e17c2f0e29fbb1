"""Sign in with a token, sign out, and ask whether the session still holds. See
``keel.server.dashboard.sessions`` for what a session is and how it is protected.

Sign-in posts are throttled per client address (``SIGN_IN_RATE``): a token is 32
random bytes, so this is not what keeps one from being guessed, but it keeps a script
from spending the store's time on it. Signing in again ends the session the browser
had, so a cookie copied before cannot outlive it."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from keel.server.dashboard.rendering import page
from keel.server.dashboard.sessions import (
    COOKIE,
    FORM_COOKIE,
    SESSION_SECONDS,
    Reading,
    Sessions,
    cookie_secure,
    csrf_for,
    safe_next,
)
from keel.server.guard import Access
from keel.server.identities import hash_secret
from keel.server.limits import RateLimits, retry_after

router = APIRouter(include_in_schema=False)

#: sign-in posts per second from one client address, and the burst allowed (10 a
#: minute, 20 at once): a person mistyping never meets it
SIGN_IN_RATE, SIGN_IN_BURST = 10 / 60, 20.0


def sign_in_limits() -> RateLimits:
    """The buckets of sign-in posts, by client address (``app.state.sign_in_limits``)."""
    return RateLimits(SIGN_IN_RATE, SIGN_IN_BURST)


def _form(
    request: Request,
    next_path: str,
    problem: str | None,
    status: int,
    headers: dict[str, str] | None = None,
) -> Response:
    """The sign-in form, with a fresh double-submit cookie."""
    secret = secrets.token_urlsafe(24)
    answer = page(request, "sign_in.html", None, status=status, next_path=safe_next(next_path),
                  csrf=csrf_for(secret), problem=problem)  # fmt: skip
    answer.set_cookie(FORM_COOKIE, secret, max_age=3600, path="/ui", httponly=True,
                      secure=cookie_secure(request), samesite="strict")  # fmt: skip
    for name, value in (headers or {}).items():
        answer.headers[name] = value
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
    access: Access = request.app.state.access
    sessions: Sessions = request.app.state.sessions
    now = access.clock()
    limits: RateLimits = request.app.state.sign_in_limits
    wait = limits.wait_for(request.client.host if request.client else "", now)
    if wait > 0:
        seconds = retry_after(wait)
        return _form(request, next_path, f"Too many sign-in attempts from this address: wait "
                     f"{seconds} seconds, then try again.", 429,
                     headers={"Retry-After": seconds})  # fmt: skip
    form_secret = request.cookies.get(FORM_COOKIE, "")
    if not form_secret or not secrets.compare_digest(csrf, csrf_for(form_secret)):
        return _form(request, next_path, "The form had expired: please sign in again.", 403)
    token = token.strip()
    who = await run_in_threadpool(access.tokens.identity, token, now)
    if who is None:
        return _form(request, next_path, "That token is unknown, revoked or expired. Make one "
                     "with: keel token create NAME --role ROLE", 401)  # fmt: skip
    former = request.cookies.get(COOKIE)
    if former and len(former) < 200:  # signing in again (maybe as another): end the old one
        await run_in_threadpool(sessions.end, former)
    secret = await run_in_threadpool(sessions.start, hash_secret(token), now)
    answer = RedirectResponse(safe_next(next_path), status_code=303)
    answer.set_cookie(COOKIE, secret, max_age=SESSION_SECONDS, path="/ui", httponly=True,
                      secure=cookie_secure(request), samesite="lax")  # fmt: skip
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


@router.get("/ui/session")
def session(viewer: Reading) -> Response:
    """Whether the session still holds, for a page whose live stream was closed: 200
    (the guard answers 401 to htmx or 303 otherwise when it does not); the page then
    goes to the sign-in form rather than reconnecting for ever."""
    return PlainTextResponse(f"signed in as {viewer.name}", headers={"Cache-Control": "no-store"})

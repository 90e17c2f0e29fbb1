"""Signing in to the dashboard: a token, given once in a form, becomes a session.

The browser never keeps the token. Signing in makes a random session secret, kept in
an HttpOnly cookie (``Secure`` over TLS, ``SameSite=Lax``, path ``/ui``); the store
keeps only its digest beside the token's digest, so a revoked or expired token ends
its sessions (within the token cache's two seconds), and a session ends on its own
after ``SESSION_SECONDS``. Every request that changes something must carry the CSRF
token, derived from the session secret (a hidden ``csrf`` form field or an
``X-CSRF-Token`` header, which htmx sends): a page on another site can make the browser
send the cookie, not read the token. The sign-in form, which has no session yet, is
protected the same way with a cookie of its own (a double submit).

``SignedIn(permission)`` is the pages' guard, as ``Needs`` is the API's: the route
check (``keel.server.guard.check_every_route``) accepts either, and like ``Needs`` it
names the token in the request's access-log line and counts the request against the
token's rate limit (a session spends its token's rate: signing in gives no more).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from keel.server.access_log import note
from keel.server.guard import DOING, Access, Guard
from keel.server.identities import Identity, hash_secret
from keel.server.limits import retry_after
from keel.server.roles import Permission, roles_with
from keel.store.protocol import Store

COOKIE = "keel_session"
#: the sign-in form's double-submit cookie
FORM_COOKIE = "keel_sign_in"
#: a session's life, from sign-in
SESSION_SECONDS = 12 * 3600
#: how long a session looked up is trusted without asking the store again
CACHE_SECONDS = 2.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at a page: their identity, and the CSRF token its forms carry."""

    identity: Identity
    csrf: str

    @property
    def name(self) -> str:
        return self.identity.name

    def may(self, permission: str) -> bool:
        """For templates: ``viewer.may('act')`` hides what the role may not do."""
        return self.identity.may(Permission(permission))


class NotSignedInError(Exception):
    """No usable session: the page answers with the sign-in form (``next``: back here)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def csrf_for(secret: str) -> str:
    """The CSRF token of a session (or of a sign-in form): not the secret, derived from it."""
    return hmac.new(secret.encode(), b"keel-csrf", hashlib.sha256).hexdigest()


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a dashboard path only (``/ui`` or under ``/ui/``),
    never another site nor a path that only begins like one (``/uievil``, ``/ui@x``).
    A ``//`` in the path or a backslash anywhere is refused: browsers read either as
    the start of another host in some positions."""
    if not path or "\\" in path:
        return "/ui/"
    route = path.split("?", 1)[0].split("#", 1)[0]
    if (route != "/ui" and not route.startswith("/ui/")) or "//" in route:
        return "/ui/"
    return path


def cookie_secure(request: Request) -> bool:
    """Whether a cookie set in answer to ``request`` is ``Secure``: when the browser
    reached the server over HTTPS. Behind a proxy that ends TLS, uvicorn takes the
    scheme from ``X-Forwarded-Proto`` only from the proxies it trusts (the environment
    variable ``FORWARDED_ALLOW_IPS``; the loopback by default): the one place to look
    when cookies are not marked ``Secure``."""
    return request.url.scheme == "https"


class Sessions:
    """Session lookups for one server, cached briefly like tokens."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._seen: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def start(self, token_digest: str, now: float) -> str:
        """A new session for the token with this digest; the secret for its cookie.
        Sessions that have expired are deleted on the way (an indexed delete)."""
        self.store.forget_sessions(now)
        secret = secrets.token_urlsafe(32)
        self.store.add_session(hash_secret(secret), token_digest, now, now + SESSION_SECONDS)
        return secret

    def token_digest(self, secret: str, now: float) -> str | None:
        """The digest of the token a live session stands for (None: no such session)."""
        digest = hash_secret(secret)
        cached = self._seen.get(digest)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        found = self.store.session_token_hash(digest, now)
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[digest] = (now, found)
        return found

    def end(self, secret: str) -> None:
        digest = hash_secret(secret)
        with self._lock:
            self._seen.pop(digest, None)
        self.store.end_session(digest)


class SignedIn(Guard):
    """The dependency that finds a page's viewer and checks one permission; a request
    that changes something must also carry the session's CSRF token."""

    async def __call__(self, request: Request) -> Viewer:
        access: Access = request.app.state.access
        now = access.clock()
        secret = request.cookies.get(COOKIE)
        who = await session_identity(request, now)
        if who is None or secret is None:
            raise NotSignedInError(_here(request))
        note(request, token=who.name)  # for the request's log line, refused or not
        wait = access.limits.wait_for(who.name, now)
        if wait > 0:
            raise HTTPException(429, f"token '{who.name}' is over its rate limit: wait a "
                                "moment and try again",
                                headers={"Retry-After": retry_after(wait)})  # fmt: skip
        csrf = csrf_for(secret)
        if request.method not in SAFE_METHODS and not await _carries(request, csrf):
            raise HTTPException(403, "the form is stale or came from another site: reload "
                                "the page and try again")  # fmt: skip
        if not who.may(self.permission):
            raise HTTPException(
                403,
                f"{who.name} has role {who.role}, which may not {DOING[self.permission]} "
                f"(roles that may: {', '.join(roles_with(self.permission))})",
            )
        return Viewer(who, csrf)


async def session_identity(request: Request, now: float) -> Identity | None:
    """Who the request's session cookie stands for (None: no cookie, or a session that
    ended, or a token revoked or expired): what ``SignedIn`` checks, and what a live
    stream checks again while it is open. Looked up in the store at most every
    ``CACHE_SECONDS`` per session and token."""
    secret = request.cookies.get(COOKIE)
    if not secret or len(secret) >= 200:
        return None
    access: Access = request.app.state.access
    sessions: Sessions = request.app.state.sessions
    return await run_in_threadpool(_identity, access, sessions, secret, now)


def _identity(access: Access, sessions: Sessions, secret: str, now: float) -> Identity | None:
    digest = sessions.token_digest(secret, now)
    return None if digest is None else access.tokens.identity_by_digest(digest, now)


def _here(request: Request) -> str:
    """The page to come back to after signing in (for a change, the page it came from)."""
    if request.method in SAFE_METHODS and not request.headers.get("HX-Request"):
        query = f"?{request.url.query}" if request.url.query else ""
        return request.url.path + query
    current = request.headers.get("HX-Current-URL") or request.headers.get("Referer") or ""
    at = current.find("/ui")
    return current[at:] if at >= 0 else "/ui/"


async def _carries(request: Request, csrf: str) -> bool:
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        field = (await request.form()).get("csrf")
        given = field if isinstance(field, str) else None
    return given is not None and hmac.compare_digest(given, csrf)


def sign_in_url(next_path: str) -> str:
    return f"/ui/sign-in?next={quote(safe_next(next_path), safe='/')}"


_GUARDS = {permission: SignedIn(permission) for permission in Permission}


def signed_in(permission: Permission) -> SignedIn:
    """The pages' guard of ``permission`` (one object per permission)."""
    return _GUARDS[permission]


Reading = Annotated[Viewer, Depends(signed_in(Permission.READ))]
Acting = Annotated[Viewer, Depends(signed_in(Permission.ACT))]
Deciding = Annotated[Viewer, Depends(signed_in(Permission.DECIDE))]
Administering = Annotated[Viewer, Depends(signed_in(Permission.ADMIN))]

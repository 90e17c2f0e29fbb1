"""A one-time message for the page a form post redirects to (post, redirect, get): what
was done ("approved ... of run ...") or why it could not be.

Kept in a short-lived cookie (HttpOnly, path ``/ui``) rather than the URL, so a link
cannot make the page claim something was done, and a reload does not say it twice: the
page that shows it deletes it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from fastapi.responses import Response

from keel.server.dashboard.sessions import cookie_secure

COOKIE = "keel_flash"
#: long enough to follow a redirect, short enough not to greet a later visit
SECONDS = 60
#: the longest message kept (a cookie holds about 4 KB)
MOST = 1000

Kind = Literal["done", "problem"]


@dataclass(frozen=True, slots=True)
class Flash:
    kind: Kind
    text: str


def set_flash(response: Response, request: Request, kind: Kind, text: str) -> None:
    body = json.dumps({"kind": kind, "text": text[:MOST]}).encode()
    value = base64.urlsafe_b64encode(body).decode().rstrip("=")
    response.set_cookie(COOKIE, value, max_age=SECONDS, path="/ui", httponly=True,
                        secure=cookie_secure(request), samesite="lax")  # fmt: skip


def read_flash(request: Request) -> Flash | None:
    """The message waiting for this page, if any (``clear_flash`` the page's response)."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        found = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(found, dict) or found.get("kind") not in ("done", "problem"):
        return None
    return Flash(found["kind"], str(found.get("text", ""))[:MOST])


def clear_flash(request: Request, response: Response) -> None:
    """The message was shown: the browser forgets it."""
    if COOKIE in request.cookies:
        response.delete_cookie(COOKIE, path="/ui")

"""A one-time message to the page an action leads back to (post, redirect, get).

An action answers with a redirect to the page it was taken from; what it did (or why
it was refused) goes with the redirect in a short-lived cookie the next page shows once
and deletes. Not in the URL: a link someone sends cannot make a page say something.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

COOKIE = "keel_flash"
#: the redirect is followed at once; a message older than this was not for this page
MAX_AGE = 60


@dataclass(frozen=True, slots=True)
class Flash:
    text: str
    #: ``ok`` or ``problem``
    kind: str = "ok"


def redirect(request: Request, to: str, text: str, kind: str = "ok") -> RedirectResponse:
    """A 303 to ``to`` carrying ``text`` for it to show once."""
    answer = RedirectResponse(to, status_code=303)
    body = json.dumps({"text": text[:2000], "kind": kind}, ensure_ascii=True)
    answer.set_cookie(COOKIE, base64.urlsafe_b64encode(body.encode()).decode(), max_age=MAX_AGE,
                      path="/ui", httponly=True, secure=request.url.scheme == "https",
                      samesite="strict")  # fmt: skip
    return answer


def taken(request: Request) -> Flash | None:
    """The message left for this page, if any (pair with ``forget`` on the answer)."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return None
    return Flash(data["text"], "problem" if data.get("kind") == "problem" else "ok")


def forget(request: Request, answer: Response) -> Response:
    """Delete the message once the page showing it is sent."""
    if COOKIE in request.cookies:
        answer.delete_cookie(COOKIE, path="/ui")
    return answer

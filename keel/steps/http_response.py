"""What an ``http`` step makes of the response: its output, or the failure it is.

The output is ``{"status": int, "headers": {lower-case name: value}, "body": ...}``;
``body`` is JSON when the step asks for ``json`` or, with ``auto``, when the content type
says JSON (``application/json``, ``*/*+json``), else text (decoded by the response's
charset, UTF-8 when it names none; bytes that do not decode are replaced). A header
sent several times has its values joined with ``", "``.

A status in ``ok_status`` (200-299 when empty) is a success. One in ``retry_status``
fails the attempt as retryable (``HttpRetryableStatus``, a ``RetryLater`` that waits at
least what ``Retry-After`` asks, in seconds or as an HTTP date); any other fails the node
(``HttpStatusError``). Their messages quote the start of the body, at most
``QUOTED_CHARS`` characters.

Invariant: the body is read through ``keel.steps.http_body``, which holds no more than
the limit (a failed response's, no more than the start it quotes).
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx2

from keel.errors import NonRetryable, RetryLater
from keel.spec.step_nodes import HttpNode
from keel.steps.http_body import HttpBodyError, first_bytes, read_body
from keel.steps.http_request import shown

QUOTED_CHARS = 300
#: how much of a failed response's body is read, to quote its start
_QUOTED_BYTES = 4 * QUOTED_CHARS
#: the longest wait a Retry-After may ask for that keel honours (a day)
MAX_RETRY_AFTER = 86400.0


class HttpStatusError(NonRetryable):
    """The server answered with a status that is neither a success nor worth a retry."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class HttpRetryableStatus(RetryLater):
    """The server answered with a status in ``retry_status`` (a 503, a 429...)."""

    def __init__(self, message: str, status: int, after: float | None) -> None:
        super().__init__(message, after=after)
        self.status = status


def outcome(
    node: HttpNode, response: httpx2.Response, limit: int, deadline: float | None
) -> dict[str, Any]:
    """The step's output for ``response``, or the failure it is (see the module)."""
    status = response.status_code
    if status in (node.ok_status or range(200, 300)):
        body = read_body(response, limit, deadline)
        return {"status": status, "headers": headers_of(response),
                "body": body_of(node, response, body)}  # fmt: skip
    message = f"{response.request.method} {shown(response.request.url)} answered HTTP {status}"
    if response.reason_phrase:
        message += f" {response.reason_phrase}"
    start = _start(response, deadline)
    if start:
        message += f": {start}"
    if status in node.retry_status:
        after = retry_after(response.headers.get("retry-after"))
        if after is not None:
            message += f" (the server asked to retry after {after:g} s)"
        raise HttpRetryableStatus(message, status, after)
    raise HttpStatusError(message, status)


def headers_of(response: httpx2.Response) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        found[key] = f"{found[key]}, {value}" if key in found else value
    return found


def body_of(node: HttpNode, response: httpx2.Response, body: bytes) -> Any:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    claimed = content_type == "application/json" or content_type.endswith("+json")
    as_json = node.response == "json" or (node.response == "auto" and claimed)
    text = text_of(response, body)
    if not as_json:
        return text
    if not body.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        why = f"its content type is {content_type}" if claimed else "the step says response: json"
        raise HttpBodyError(
            f"the response body is not valid JSON ({exc}), yet {why}; it starts: {_quoted(text)!r}"
        ) from None


def _start(response: httpx2.Response, deadline: float | None) -> str:
    """The start of a failed response's body (read no further than needed, nor past the
    step's ``deadline``: the status is the failure, its body only an illustration)."""
    found = first_bytes(response, _QUOTED_BYTES, deadline)
    return _quoted(text_of(response, found))


def text_of(response: httpx2.Response, body: bytes) -> str:
    """``body`` decoded by the charset the response names (UTF-8 if none, or one Python
    does not know); bytes that do not decode are replaced."""
    try:
        return body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _quoted(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= QUOTED_CHARS else flat[: QUOTED_CHARS - 1] + "…"


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """The seconds a ``Retry-After`` value asks to wait (a number, or an HTTP date,
    against ``now`` in epoch seconds), at most ``MAX_RETRY_AFTER``; None if unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    wait = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, wait), MAX_RETRY_AFTER)

"""One log line per request the API answers, at ``INFO`` on ``keel.server.access``,
through keel's logging (so JSON with ``--log-format json``, the fields as JSON fields:
``keel.runtime.log_lines.REQUEST_FIELDS``)::

    GET /runs/3731db03/logs 200 4.1 ms by ops from 10.0.0.7

The method, the path as sent (percent-encoded: never the query string, which may carry
what a caller did not mean to have logged), the status, the milliseconds until the
answer was sent, the name of the token it was authenticated with (``note``: the guard
says it once it knows it, refused or not), and the client's address; for a webhook
delivery, its id (``X-Keel-Delivery``). Never a header or a body. uvicorn's own access
log is off (``keel serve``): this line replaces it.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

from starlette.requests import Request

log = logging.getLogger("keel.server.access")

#: where ``note`` keeps what the route learnt, in the request's state
_TOKEN, _DELIVERY = "keel_access_token", "keel_access_delivery"
#: characters of a token's name or a delivery id logged at most (an id keel takes has
#: at most 200)
_MOST_CHARS = 200


def note(request: Request, *, token: str | None = None, delivery: str | None = None) -> None:
    """Say who called (the token's name) or which delivery it was, for the request's line."""
    if token is not None:
        setattr(request.state, _TOKEN, token)
    if delivery is not None:
        setattr(request.state, _DELIVERY, delivery)


def _printable(text: str, limit: int) -> str:
    """``text`` as one safe piece of a line: no control characters, at most ``limit``."""
    return "".join(c if c.isprintable() and not c.isspace() else "?" for c in text[:limit])


def _path(scope: dict[str, Any]) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):  # as sent, still percent-encoded: no line breaks in it
        return raw.decode("latin-1")
    return quote(str(scope.get("path", "")))


class AccessLog:
    """ASGI middleware: log each HTTP request once it has been answered."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # shared with ``request.state``: where ``note`` writes
        started = time.perf_counter()
        status = 500  # unless an answer starts: the app failed before it answered

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._line(scope, status, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _line(scope: dict[str, Any], status: int, elapsed_ms: float) -> None:
        state = scope.get("state") or {}
        client = scope.get("client")
        fields: dict[str, Any] = {
            "method": str(scope.get("method", "")), "path": _path(scope), "status": status,
            "duration_ms": round(elapsed_ms, 1),
            "token": None, "client": client[0] if client else None,
        }  # fmt: skip
        if state.get(_TOKEN) is not None:
            fields["token"] = _printable(str(state[_TOKEN]), _MOST_CHARS)
        delivery = state.get(_DELIVERY)
        if delivery:
            fields["delivery"] = _printable(str(delivery), _MOST_CHARS)
        said = f"{fields['method']} {fields['path']} {status} {fields['duration_ms']} ms"
        if fields["token"] is not None:
            said += f" by {fields['token']}"
        if "delivery" in fields:
            said += f" delivery {fields['delivery']}"
        if fields["client"] is not None:
            said += f" from {fields['client']}"
        log.info("%s", said, extra=fields)

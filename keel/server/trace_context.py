"""Runs started through the API join the caller's trace.

A request's W3C ``traceparent`` header (``POST /runs``, ``POST /events/NAME``, a webhook's
``POST /hooks/...``, any route) makes the span it names the current one while the
request is handled: a run started by it records that trace and that span as its run
span's parent (``keel.runtime.tracing.context``), and every attempt continues it. Sync
routes run on threads that copy the request's context, so they see it too. A missing or
malformed header changes nothing: the run starts a trace of its own.
"""

from __future__ import annotations

from typing import Any

from keel.runtime.tracing.context import continued


class ContinueTrace:
    """ASGI middleware: the request's ``traceparent``, current while it is handled."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        header = None
        if scope["type"] == "http":
            header = dict(scope.get("headers") or ()).get(b"traceparent")
        if header is None:
            await self.app(scope, receive, send)
            return
        with continued(header.decode("latin-1")):
            await self.app(scope, receive, send)

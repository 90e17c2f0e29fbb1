"""The headers every dashboard response carries: no framing by another site
(clickjacking), no guessing a content type, no full URL in the ``Referer`` sent
elsewhere, and a Content Security Policy that runs only the dashboard's own script files.

The CSP is why the pages hold no inline script, no ``on*=`` handler and no ``hx-on``
attribute, and why htmx is told not to evaluate anything (the ``htmx-config`` meta in
``base.html``): a string that slipped into a page through a missed escape cannot run.
Data for a script travels in ``<script type="application/json">``, which is never run.
Inline ``style`` attributes stay allowed (the timeline's bars are placed with them).

An ASGI middleware over the whole app, acting only on paths under ``/ui``: it also
covers the error pages and the streams. The error page of an unexpected failure is
sent from outside the middlewares, so ``error_page`` sets the same headers itself.
A header a route set already is left as it is.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import MutableHeaders

CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))  # fmt: skip

HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": CSP,
}


def add_headers(headers: MutableHeaders) -> None:
    """Add the dashboard's headers that ``headers`` does not have yet."""
    for name, value in HEADERS.items():
        if name not in headers:
            headers[name] = value


class PageHeaders:
    """ASGI middleware: ``HEADERS`` on every response to a path under ``prefix``."""

    def __init__(self, app: Any, prefix: str = "/ui") -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self._under(scope):
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                add_headers(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, sending)

    def _under(self, scope: Any) -> bool:
        """Whether the path (seen from the app: less any ``root_path``) is a page's."""
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return bool(path == self.prefix or path.startswith(f"{self.prefix}/"))

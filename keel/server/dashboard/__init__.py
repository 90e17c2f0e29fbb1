"""The dashboard: server-rendered pages under ``/ui`` (Jinja2 + htmx), live over one
Server-Sent Events stream per tab, for the people who watch and act on runs.

Pages call the same read models and operations as the API and the CLI
(``keel.runtime.views``, ``keel.runtime.operations``), so a page cannot say something
``keel show`` would not. Every page is guarded (``sessions.SignedIn``) like every API
route; actions are recorded with the signed-in identity as ``by``. Every response under
``/ui`` carries anti-framing headers and a Content Security Policy (``headers``).
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from types import ModuleType

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from keel.server.dashboard import assets, pages
from keel.server.dashboard.headers import PageHeaders, add_headers
from keel.server.dashboard.pages import signing
from keel.server.dashboard.rendering import page
from keel.server.dashboard.run_view import Replays
from keel.server.dashboard.sessions import NotSignedInError, Sessions, sign_in_url
from keel.server.dashboard.shared import Shared
from keel.store.protocol import Store

#: where the pages live; the API keeps every other path
PREFIX = "/ui"


def install(app: FastAPI, store: Store) -> None:
    """Add the dashboard's routes to ``app`` (``/`` leads to it), and the middleware that
    gives its responses their security headers."""
    app.state.sessions = Sessions(store)
    app.state.sign_in_limits = signing.sign_in_limits()
    #: set when the server shuts down: the live streams end then, so it need not wait
    app.state.closing = threading.Event()
    #: what every tab shares: aggregates computed once for all, and runs replayed
    app.state.shared = Shared()
    app.state.replays = Replays()
    for module in (assets, signing, *_views()):  # sign-in first: its paths are fixed
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        """Public: a redirect to the dashboard, which asks for sign-in itself."""
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @app.exception_handler(NotSignedInError)
    async def sign_in_first(request: Request, exc: NotSignedInError) -> Response:
        target = sign_in_url(exc.next_path)
        if request.headers.get("HX-Request"):  # htmx follows this header, not a 303
            return Response(status_code=401, headers={"HX-Redirect": target})
        if _is_stream(request):  # an EventSource follows no sign-in form
            return Response("sign in first", status_code=401)
        return RedirectResponse(target, status_code=303)

    app.add_middleware(PageHeaders, prefix=PREFIX)


def _is_stream(request: Request) -> bool:
    """A live stream's request (what an EventSource sends, or a path under /ui/live)."""
    accepts = request.headers.get("accept", "")
    return "text/event-stream" in accepts or request.url.path.startswith(f"{PREFIX}/live")


def _views() -> list[ModuleType]:
    """Every module of ``pages`` with a ``router``: a new view is a new module there.

    In name order, except that a module setting ``AFTER_FIXED_PATHS = True`` comes after
    the others: a route is matched in the order the routes were added, so a path with a
    parameter where another view has a fixed word (``/ui/runs/{run_id}`` beside
    ``/ui/runs/bulk``) must be added after it, or it takes that word for a value."""
    found = []
    for info in pkgutil.iter_modules(pages.__path__):
        module = importlib.import_module(f"{pages.__name__}.{info.name}")
        if isinstance(getattr(module, "router", None), APIRouter) and module is not signing:
            found.append(module)
    return sorted(found, key=lambda module: getattr(module, "AFTER_FIXED_PATHS", False))


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    """What a page answers on an error: the same words the API would say, in the page
    (with the pages' headers: a 500 is sent from outside the middleware that adds them)."""
    answer = page(request, "error.html", None, status=status, status_code=status,
                  detail=detail)  # fmt: skip
    add_headers(answer.headers)
    return answer

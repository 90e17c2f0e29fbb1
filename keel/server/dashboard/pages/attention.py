"""Needs attention (``/ui/attention``): failed runs grouped by error type and node,
stuck runs with their reason, late runs, overdue approvals, open circuits, alerts
firing (``keel.runtime.views.attention`` says how each is read, and its bounds).

Live: while runs change, the blocks are recomputed at most once in ``EVERY`` seconds for
every tab of the process showing the same window together (``shared.Shared``), and each
tab patches only those that changed; the stuck runs, which read histories, at most once
in ``STUCK_EVERY`` seconds. A window (24 hours, 7 days) ends now: its start moves on in
whole minutes, the same for every tab, and the links of its counts carry it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from keel.runtime.views.alerts import alert_document
from keel.runtime.views.attention import QUIET, Attention, attention
from keel.server.dashboard.links import run_url, runs_url
from keel.server.dashboard.live import Event, live_url, stream
from keel.server.dashboard.rendering import fragment, page
from keel.server.dashboard.sessions import Reading
from keel.server.dashboard.shared import Shared
from keel.server.dashboard.times import iso
from keel.server.dashboard.why_words import reason_words
from keel.server.service import Service, service
from keel.store.records import RunChange

router = APIRouter(include_in_schema=False)

Served = Annotated[Service, Depends(service)]

BLOCKS = ("at-failures", "at-stuck", "at-late", "at-approvals", "at-circuits", "at-alerts")
#: seconds between two computations for the live pages (all of them together)
EVERY = 5.0
STUCK_EVERY = 10.0
#: the windows the failures may be limited to (``since``)
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "all": None}


def _since(window: str, now: float) -> float | None:
    """The window's start: whole minutes (the failures' links carry ``created_after``
    to the second, and the tabs of a window share one computation for a minute)."""
    span = WINDOWS.get(window)
    return None if span is None else float(math.floor((now - span.total_seconds()) / 60) * 60)


def _context(found: Attention, window: str, since: float | None) -> dict[str, Any]:
    return {"at": found, "window": window, "windows": list(WINDOWS), "since": since,
            "runs_url": runs_url, "run_url": run_url, "iso": iso, "quiet": QUIET,
            "reason_words": reason_words, "alert_document": alert_document}  # fmt: skip


def _window(window: str) -> str:
    return window if window in WINDOWS else "all"


@router.get("/ui/attention", response_class=HTMLResponse)
def attention_page(
    request: Request,
    viewer: Reading,
    served: Served,
    window: Annotated[str, Query(max_length=8)] = "all",
) -> HTMLResponse:
    window = _window(window)
    now = served.clock.now()
    since = _since(window, now)
    found = attention(served.store, served.plans.plan, now, created_after=since)
    stream_url = live_url("/ui/live/attention", served.store, window=window)
    return page(request, "attention.html", viewer, blocks=BLOCKS, live=stream_url,
                **_context(found, window, since))  # fmt: skip


class _Follow:
    """One tab's view: the blocks as last sent, and when the stuck runs were last
    explained. What it shows is the process's, computed for every tab of the same
    window together (``shared``)."""

    def __init__(self, served: Service, window: str, shared: Shared) -> None:
        self.served, self.window, self.shared = served, window, shared
        self.sent: dict[str, str] = {}
        self.last: object = None
        self.stuck_at = time.monotonic()

    def _attention(self, explain: bool) -> tuple[float | None, Attention]:
        served, window = self.served, self.window

        def compute() -> tuple[float | None, Attention]:
            now = served.clock.now()
            since = _since(window, now)
            return since, attention(served.store, served.plans.plan, now,
                                    created_after=since, with_stuck=explain)  # fmt: skip

        every = STUCK_EVERY if explain else EVERY
        return self.shared.get(("attention", window, explain), every, compute)

    def __call__(self, changes: Sequence[RunChange] | None) -> list[Event]:
        whole = changes is None
        explain = whole or time.monotonic() - self.stuck_at >= STUCK_EVERY
        computed = self._attention(explain)
        if explain:
            self.stuck_at = time.monotonic()
        elif computed is self.last:  # the same computation: the same blocks
            return []
        self.last = computed
        since, found = computed
        context = _context(found, self.window, since)
        items = []
        for name in BLOCKS:
            if name == "at-stuck" and not explain:
                continue
            html = fragment("attention_block.html", block=name, **context)
            if whole or self.sent.get(name) != html:
                items.append({"id": name, "html": html})
                self.sent[name] = html
        return [Event("patch", {"items": items})] if items else []


@router.get("/ui/live/attention")
def live(
    request: Request,
    viewer: Reading,
    served: Served,
    window: Annotated[str, Query(max_length=8)] = "all",
) -> StreamingResponse:
    shared: Shared = request.app.state.shared
    return stream(request, served.store, _Follow(served, _window(window), shared), every=EVERY)

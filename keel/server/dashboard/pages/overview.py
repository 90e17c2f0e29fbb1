"""The overview (``/ui/``, the home page): the whole store at a glance, every number a
link to the runs it counts (``keel.runtime.views.overview`` says how each is read).

Live: while runs change, the aggregates are recomputed at most once in ``EVERY``
seconds for every tab of the process together (``shared.Shared``: at 100,000 runs a day
one computation costs a good part of a second), and each tab patches only the blocks
whose numbers changed; the throughput chart, in whole hours, is read again at most once
a minute, for every tab together too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from keel.runtime.views.overview import STATUSES, Overview, overview, window_throughput
from keel.server.dashboard.links import run_url, runs_url
from keel.server.dashboard.live import Event, live_url, stream
from keel.server.dashboard.rendering import fragment, page
from keel.server.dashboard.sessions import Reading
from keel.server.dashboard.shared import Shared
from keel.server.dashboard.times import iso
from keel.server.service import Service, service
from keel.store.records import RunChange
from keel.store.summaries import Throughput

router = APIRouter(include_in_schema=False)

Served = Annotated[Service, Depends(service)]

#: the page's blocks, each patched on its own (their element ids)
BLOCKS = ("ov-runs", "ov-rates", "ov-workflows", "ov-queues", "ov-workers", "ov-alerts")
#: seconds between two computations for the live pages (all of them together), and two
#: reads of the chart
EVERY = 5.0
CHART_EVERY = 60.0


def chart_data(throughput: Throughput | None) -> dict[str, Any]:
    """The chart's series (uPlot's columns): each step's start, runs started, ended,
    failed."""
    if throughput is None:
        return {}
    steps = range(len(throughput.started))
    return {
        "x": [throughput.since + i * throughput.step for i in steps],
        "started": throughput.started,
        "ended": throughput.ended_total(),
        "failed": throughput.ended.get("failed", [0 for _ in steps]),
    }


def _context(found: Overview) -> dict[str, Any]:
    return {"ov": found, "statuses": STATUSES, "runs_url": runs_url, "run_url": run_url,
            "iso": iso}  # fmt: skip


def block(name: str, found: Overview) -> str:
    return fragment("overview_block.html", block=name, **_context(found))


@router.get("/ui/", response_class=HTMLResponse)
def home(request: Request, viewer: Reading, served: Served) -> HTMLResponse:
    found = overview(served.store, served.clock.now())
    return page(request, "overview.html", viewer, blocks=BLOCKS, chart=chart_data(found.throughput),
                live=live_url("/ui/live/overview", served.store), **_context(found))  # fmt: skip


class _Follow:
    """One tab's view of the overview: the blocks as last sent, so only those that
    changed are patched, and when the chart was last sent. The overview and the chart
    are the process's, computed for every tab together (``shared``)."""

    def __init__(self, served: Service, shared: Shared) -> None:
        self.served, self.shared = served, shared
        self.sent: dict[str, str] = {}
        self.last: Overview | None = None
        self.chart_at = time.monotonic()

    def _overview(self) -> Overview:
        store, clock = self.served.store, self.served.clock
        return self.shared.get(
            "overview", EVERY, lambda: overview(store, clock.now(), with_throughput=False)
        )

    def _throughput(self) -> Throughput:
        store, clock = self.served.store, self.served.clock
        return self.shared.get(
            "throughput", CHART_EVERY, lambda: window_throughput(store, clock.now())
        )

    def __call__(self, changes: Sequence[RunChange] | None) -> list[Event]:
        whole = changes is None
        chart = whole or time.monotonic() - self.chart_at >= CHART_EVERY
        found = self._overview()
        items = []
        if whole or found is not self.last:  # the same computation: the same blocks
            self.last = found
            for name in BLOCKS:
                html = block(name, found)
                if whole or self.sent.get(name) != html:
                    items.append({"id": name, "html": html})
                    self.sent[name] = html
        events = [Event("patch", {"items": items})] if items else []
        if chart:
            self.chart_at = time.monotonic()
            events.append(Event("throughput", chart_data(self._throughput())))
        return events


@router.get("/ui/live/overview")
def live(request: Request, viewer: Reading, served: Served) -> StreamingResponse:
    """The first change sends every block (the page may have been drawn before it),
    later ones only the blocks that changed."""
    shared: Shared = request.app.state.shared
    return stream(request, served.store, _Follow(served, shared), every=EVERY)

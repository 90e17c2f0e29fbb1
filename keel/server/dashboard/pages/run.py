"""The run page (``/ui/runs/{id}``): header with status and the why line, the graph with
live node states, steps, the LLM ledger (a run that called models), timeline, history
with its chain checked, per-attempt input, output and logs; and the parts it loads or
refreshes on its own (a node's attempts, a page of history or of log lines, the whole
graph of a big run, the live stream).

Everything is read through the run's read models (``keel.runtime.views``); the run's
history is read and replayed once per change of the run, whoever asks (the page, its
parts, every tab following it: ``run_view.read_run``). The actions are in
``run_acting``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from keel.errors import NodeNotFoundError
from keel.runtime.runs import RunCache
from keel.runtime.views.documents import event_document, run_detail, verification_document
from keel.runtime.views.task_logs import log_tail, run_logs
from keel.server.dashboard.flash import clear_flash, read_flash
from keel.server.dashboard.live import Event, live_url, stream
from keel.server.dashboard.rendering import fragment, page
from keel.server.dashboard.run_actions import (
    ACTIONS,
    MOST_REASON,
    NODE_ACTIONS,
    allowed,
    preview,
)
from keel.server.dashboard.run_view import (
    HISTORY_PAGE,
    STEPS_FIRST,
    Replays,
    RunView,
    Step,
    display_state,
    drawing,
    output_preview,
    read_run,
)
from keel.server.dashboard.sessions import Reading, Viewer
from keel.server.dashboard.timeline import timeline
from keel.server.dashboard.times import iso
from keel.server.dashboard.why_words import node_words, reason_data, reason_words
from keel.server.service import Service, decode_cursor, service
from keel.store.records import RunChange, RunRecord

router = APIRouter(include_in_schema=False)
#: ``/ui/runs/{run_id}`` would take ``/ui/runs/bulk`` and the like for a run's id: this
#: view's routes are added after the other views' (``keel.server.dashboard._views``)
AFTER_FIXED_PATHS = True
Served = Annotated[Service, Depends(service)]


async def replays(request: Request) -> Replays:
    """The process's runs replayed (``app.state.replays``), shared by every request and
    tab. Async: it does no I/O."""
    found: Replays = request.app.state.replays
    return found


Replaying = Annotated[Replays, Depends(replays)]

#: log lines on one page (the tail first, then earlier pages)
LOG_PAGE = 200
#: lines read at a time for the download
_DOWNLOAD_PAGE = 5000
#: a node's attempts listed in its panel at most (a big map's items)
MOST_ATTEMPTS = 100
#: a history longer than this is verified after the page is drawn (its own request)
VERIFY_WITH_PAGE = 2000


def _view(served: Service, known: Replays, record: RunRecord) -> RunView:
    return read_run(served.store, record, served.plans.plan(record.spec_version),
                    served.clock.now(), known)  # fmt: skip


def _verification(served: Served, view: RunView) -> dict[str, Any]:
    """The chain and the run's row checked (``keel verify``), against the state already
    replayed for the page."""
    state = view.report.state
    return verification_document(served.store, view.record, lambda _run_id: state)


def parts(view: RunView) -> dict[str, Any]:
    """What the page's templates and their live patches share (besides the viewer)."""
    offered = allowed(view.status)
    return {"view": view, "run_id": view.record.id, "words": node_words,
            "said": reason_words, "reason_data": reason_data, "actions": offered,
            "shown": display_state, "output_preview": output_preview,
            "labels": ACTIONS, "most_reason": MOST_REASON,
            # the dialogs of actions on the run as a whole show their preview at once
            "previews": {action: preview(view, action) for action in offered
                         if action not in NODE_ACTIONS}}  # fmt: skip


def step_row(step: Step, run_id: str) -> str:
    """A row of the steps table, alone (the table of a big run, a live patch)."""
    return fragment("run/step_row.html", step=step, run_id=run_id, output_preview=output_preview)


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request, run_id: str, viewer: Reading, served: Served, known: Replaying
) -> Response:
    store = served.store
    record = store.get_run(run_id)
    if record.pruned_at is not None:  # no history left: its row and tombstone
        detail = run_detail(store, record, served.plans.plan(record.spec_version),
                            served.clock.now())  # fmt: skip
        return page(request, "run_pruned.html", viewer, detail=detail)
    # the feed's position before the run is read: the stream starts there, so a change
    # committed while the page is drawn is sent, never lost between the two
    stream_url = live_url(f"/ui/live/runs/{record.id}", store)
    view = _view(served, known, record)
    shown = drawing(view)
    big = len(view.history) > VERIFY_WITH_PAGE
    context: dict[str, Any] = {
        **parts(view),
        "graph": {"elements": shown.elements, "total": shown.total, "shown": shown.shown,
                  "focus": shown.focus},
        "drawing": shown, "flash": read_flash(request), "live": stream_url,
        # a big run's timeline and history are loaded when scrolled to: the page that
        # paints first is the header, the why, the graph and the steps
        "timeline": None if big else timeline(view.attempts, record.created_at, view.now),
        "events": None if big else [event_document(e) for e in view.newest_events()],
        "node_list": len(view.steps) <= STEPS_FIRST,
    }  # fmt: skip
    if big:  # a long chain is checked by its own request once the page is drawn
        context["verify_later"] = True
    else:
        context["verification"] = _verification(served, view)
    answer = page(request, "run.html", viewer, **context)
    clear_flash(request, answer)
    return answer


@router.get("/ui/runs/{run_id}/elements")
def elements(
    run_id: str, viewer: Reading, served: Served, known: Replaying,
    focus: Annotated[str | None, Query(max_length=500)] = None, everything: bool = False,
) -> JSONResponse:  # fmt: skip
    """The graph's cytoscape elements with node states: the whole graph (``everything``)
    or the neighbourhood of ``focus`` (a big graph)."""
    view = _view(served, known, served.store.get_run(run_id))
    shown = drawing(view, everything=everything, focus=focus)
    return JSONResponse({"elements": shown.elements, "total": shown.total, "shown": shown.shown,
                         "focus": shown.focus}, headers={"Cache-Control": "no-store"})  # fmt: skip


@router.get("/ui/runs/{run_id}/nodes/{node}", response_class=HTMLResponse)
def node_panel(
    run_id: str, node: str, viewer: Reading, served: Served, known: Replaying
) -> HTMLResponse:
    """A node's attempts: when each was queued, started and ended, its input, output or
    error, its child run, and its logs (tail first)."""
    view = _view(served, known, served.store.get_run(run_id))
    if node not in view.report.nodes:
        raise NodeNotFoundError(f"run {run_id[:8]} has no node '{node}'")
    attempts = [a for a in view.attempts if a.node == node]
    step = next(s for s in view.steps if s.node == node)
    return HTMLResponse(fragment("run/node.html", run_id=view.record.id, node=node, step=step,
                                 attempts=attempts[-MOST_ATTEMPTS:],
                                 hidden=max(0, len(attempts) - MOST_ATTEMPTS),
                                 detail=view.report.nodes[node]))  # fmt: skip


@router.get("/ui/runs/{run_id}/history", response_class=HTMLResponse)
def history_page(
    run_id: str, viewer: Reading, served: Served,
    before: Annotated[int, Query(ge=1, le=2**62, description="events before this seq")] = 2**62,
) -> HTMLResponse:  # fmt: skip
    """A page of the history, newest first, before event ``before``."""
    record = served.store.get_run(run_id)
    end = min(before, record.last_seq + 1)  # the page is the events just before it
    found = served.store.history(record.id, max(0, end - 1 - HISTORY_PAGE), before_seq=end)
    newest = list(reversed(found))
    return HTMLResponse(fragment("run/history_rows.html", run_id=record.id,
                                 events=[event_document(e) for e in newest]))  # fmt: skip


@router.get("/ui/runs/{run_id}/verify", response_class=HTMLResponse)
def verify(run_id: str, viewer: Reading, served: Served) -> HTMLResponse:
    """The chain-verified badge, checked now (as ``GET /runs/{id}/verify``)."""
    record = served.store.get_run(run_id)
    replay = RunCache(served.store, capacity=1)
    checked = verification_document(served.store, record, replay.state)
    return HTMLResponse(fragment("run/verify.html", verification=checked))


@router.get("/ui/runs/{run_id}/steps", response_class=HTMLResponse)
def steps(run_id: str, viewer: Reading, served: Served, known: Replaying) -> HTMLResponse:
    """Every step of the run (a big run's page is drawn with some)."""
    view = _view(served, known, served.store.get_run(run_id))
    rows = "".join(step_row(step, view.record.id) for step in view.steps)
    return HTMLResponse(f"<tbody>{rows}</tbody>")


@router.get("/ui/runs/{run_id}/logs", response_class=HTMLResponse)
def logs(
    run_id: str, viewer: Reading, served: Served,
    node: Annotated[str | None, Query(max_length=500)] = None,
    attempt: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:  # fmt: skip
    """The last ``LOG_PAGE`` lines (before line ``before``), with a link to earlier ones."""
    record = served.store.get_run(run_id)
    lines = log_tail(served.store, record, served.plans.plan(record.spec_version), node=node,
                     attempt=attempt, before=before, limit=LOG_PAGE)  # fmt: skip
    return HTMLResponse(fragment("run/logs.html", run_id=record.id, node=node, attempt=attempt,
                                 lines=lines, more=len(lines) == LOG_PAGE))  # fmt: skip


@router.get("/ui/runs/{run_id}/logs.txt")
def logs_text(
    run_id: str, viewer: Reading, served: Served,
    node: Annotated[str | None, Query(max_length=500)] = None,
    attempt: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> StreamingResponse:  # fmt: skip
    """Every line of the run (of ``node``, ``attempt``) as text, for a download."""
    store = served.store
    record = store.get_run(run_id)
    plan = served.plans.plan(record.spec_version)
    # a node or an attempt the run does not have is a 404 before the download starts
    run_logs(store, record, plan, node=node, attempt=attempt, after=0, limit=1)

    def lines() -> Iterator[bytes]:
        after = 0
        while True:
            found = store.task_logs(record.id, node=node, attempt=attempt, after=after,
                                    limit=_DOWNLOAD_PAGE)  # fmt: skip
            for line in found:
                where = line.node + ("" if line.item is None else f"[{line.item}]")
                at = iso(line.at, "milliseconds")
                yield (f"{line.seq}\t{where}\t#{line.attempt}\t{at}\t{line.level}\t"
                       f"{line.message}\n").encode()  # fmt: skip
            if len(found) < _DOWNLOAD_PAGE:
                return
            after = found[-1].seq

    name = "-".join(p for p in (record.id[:8], node, None if attempt is None else str(attempt))
                    if p)  # fmt: skip
    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{_safe(name)}.log.txt"',
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
    })  # fmt: skip


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100]


@router.get("/ui/runs/{run_id}/timeline", response_class=HTMLResponse)
def timeline_part(run_id: str, viewer: Reading, served: Served, known: Replaying) -> HTMLResponse:
    view = _view(served, known, served.store.get_run(run_id))
    return HTMLResponse(fragment("run/timeline.html", run_id=view.record.id,
                                 timeline=timeline(view.attempts, view.record.created_at,
                                                   view.now)))  # fmt: skip


# --- live -------------------------------------------------------------------------------


class Follower:
    """One tab's view of one run: what it last sent, so each event carries only what
    changed since (a reconnect, ``follow(None)``, sends everything again)."""

    def __init__(self, served: Service, known: Replays, run_id: str, viewer: Viewer) -> None:
        self.served, self.known, self.run_id, self.viewer = served, known, run_id, viewer
        self.states: dict[str, dict[str, Any]] = {}
        self.steps: dict[str, Step] = {}
        self.html: dict[str, str] = {}

    def __call__(self, changes: Sequence[RunChange] | None) -> list[Event]:
        if changes is not None and all(change.id != self.run_id for change in changes):
            return []
        if changes is None:
            self.states, self.steps, self.html = {}, {}, {}
        record = self.served.store.get_run(self.run_id)
        view = _view(self.served, self.known, record)
        nodes = {node: state for node, state in view.states.items()
                 if self.states.get(node) != state}  # fmt: skip
        self.states = dict(view.states)
        shared = {**parts(view), "viewer": self.viewer}
        shared["node_list"] = False  # the dialogs are not patched
        rendered = {
            "run-header": fragment("run/header.html", **shared),
            "run-why": fragment("run/why.html", **shared),
            "run-actions": fragment("run/actions.html", **shared),
            "run-llm": fragment("run/llm.html", **shared),
            "run-timeline": fragment("run/timeline.html", run_id=record.id,
                                     timeline=timeline(view.attempts, record.created_at,
                                                       view.now)),
            "run-history": fragment("run/history.html", run_id=record.id, events=[
                event_document(e) for e in view.newest_events()], **self._checked(view)),
        }  # fmt: skip
        items = [{"id": key, "html": html} for key, html in rendered.items()
                 if self.html.get(key) != html]  # fmt: skip
        self.html = rendered
        for step in view.steps:  # compared as values: only the rows that changed are drawn
            if self.steps.get(step.node) != step:
                items.append({"id": f"step-{step.node}", "html": step_row(step, record.id)})
        self.steps = {step.node: step for step in view.steps}
        events = []
        if nodes:
            events.append(Event("nodes", {"run_id": record.id, "status": view.status,
                                          "nodes": nodes}))  # fmt: skip
        if items:
            events.append(Event("patch", {"items": items}))
        return events

    def _checked(self, view: RunView) -> dict[str, Any]:
        """The chain checked again with the history, when it is short (else the badge
        becomes a button that checks it)."""
        if len(view.history) > VERIFY_WITH_PAGE:
            return {}
        return {"verification": _verification(self.served, view)}


@router.get("/ui/live/runs/{run_id}")
def live(
    request: Request, run_id: str, viewer: Reading, served: Served, known: Replaying
) -> StreamingResponse:
    """The run page's stream: ``nodes`` (the graph's nodes whose state or counts changed)
    and ``patch`` (the header, the why line, the steps that changed)."""
    record = served.store.get_run(run_id)
    follower = Follower(served, known, record.id, viewer)
    drawn_at = _drawn_at(request.query_params.get("from"))
    if drawn_at is not None and record.updated_at <= drawn_at:
        # unchanged since the page was drawn: what it shows is what the run is now, so
        # the first event need carry only what changes next
        follower(None)
    return stream(request, served.store, follower)


def _drawn_at(text: str | None) -> float | None:
    """The time of the feed position a page was drawn at (its stream's ``from``)."""
    if not text:
        return None
    try:
        at = decode_cursor(text, (float, str))[0]
    except HTTPException:
        return None
    return float(at)

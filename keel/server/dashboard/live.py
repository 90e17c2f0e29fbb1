"""One Server-Sent Events stream per tab: what changed in the store, as the page needs it.

Any process may commit (a worker on another host, the CLI), so the stream does not wait
for this server's own writes: it follows the store's change feed (``Store.runs_changed``:
runs by the time their row last changed), a read on an index, four times a second. Each
page says what a change means to it (``Follow``): the run page sends the nodes whose
state changed, the runs list the rows that changed. Events carry the feed's position as
their id, and the page embeds the position it was drawn at (``from``), so nothing
committed between the page and its stream is lost.

What a stream reads is bounded, however far behind the feed its position is: a browser
that comes back (``Last-Event-ID``: a network hiccup, the server restarted), a page
drawn long ago (``from`` older than ``BEHIND_SECONDS``) or a stream more than ``BATCH``
changes behind is not given every change since (a day of them, at 100,000 runs a
day): it jumps to the feed's newest position and the page is brought up to date whole
(``follow(None)``), which costs what drawing the page costs. The stream ends when the
server shuts down (``closing``).

A stream is opened by a signed-in viewer, and it must not outlive the session: every
``SESSION_CHECK_SECONDS`` it asks again (the guard's own lookup, cached two seconds),
and once the session has ended (signed out, its token revoked or expired) it sends
``signed-out`` and ends; the page then goes to the sign-in form.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from keel.server.dashboard.sessions import session_identity
from keel.server.service import decode_cursor, encode_cursor
from keel.store.protocol import Store
from keel.store.records import RunChange

#: how often the feed is read while a tab listens
POLL_SECONDS = 0.25
#: a comment line this often keeps proxies from closing a quiet stream
KEEPALIVE_SECONDS = 15.0
#: the most changes read at once; a stream more than this behind its position jumps to
#: the newest and brings its page up to date whole (see ``Window``)
BATCH = 500
#: a page's ``from`` this far behind the feed's newest: the stream starts at the newest
#: and brings the page up to date whole rather than read every change since
BEHIND_SECONDS = 30.0
#: how far behind its position a stream reads again (see ``Window``)
LOOKBACK_SECONDS = 2.0
#: what the browser waits before reconnecting, in milliseconds
RETRY_MS = 1000
#: how often an open stream checks that its session still holds
SESSION_CHECK_SECONDS = 15.0

Position = tuple[float, str]


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the stream: its name (what the page listens for) and JSON data."""

    name: str
    data: Any


#: a page's view of the feed: given the runs that changed (None: the browser reconnected,
#: or the stream was too far behind to read every change, and the page must be brought
#: up to date whole), the events to send (run on a thread)
Follow = Callable[[Sequence[RunChange] | None], list[Event]]


def position_text(position: Position | None) -> str:
    return "" if position is None else encode_cursor(position[0], position[1])


def newest(store: Store) -> Position | None:
    """The feed's position now: a page drawn now follows from here."""
    found = store.runs_changed(None, 1)
    return (found[-1].updated_at, found[-1].id) if found else None


def live_url(path: str, store: Store, **params: str | None) -> str:
    """The stream URL a page embeds, starting where the page was drawn."""
    query = {k: v for k, v in params.items() if v is not None}
    start = position_text(newest(store))
    if start:
        query["from"] = start
    return f"{path}?{urlencode(query)}" if query else path


def _position(text: str | None) -> Position | None:
    if not text:
        return None
    try:
        parts = decode_cursor(text, (float, str))
    except HTTPException:
        return None
    return float(parts[0]), str(parts[1])


def _frame(event: Event, position: Position | None) -> str:
    lines = [f"event: {event.name}"]
    if position is not None:
        lines.append(f"id: {position_text(position)}")
    data = json.dumps(event.data, separators=(",", ":"), default=str)
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


class Window:
    """Where a stream is in the feed, read again ``LOOKBACK_SECONDS`` behind itself.

    A run's ``updated_at`` is when its change was decided, not when it was committed: a
    writer slower to commit (or on a host whose clock is behind) can land a change
    behind a position already read past. So each read starts that far back, and the
    changes seen already (the same run at the same sequence number, status and late
    flag) are dropped: a change is given once, late ones too.

    A read gives at most ``BATCH`` changes past the position (the ones read again behind
    it are read in turns, none skipped): when more were written since, the window jumps
    to the feed's newest position and ``read`` says so (None), so a stream far behind
    never reads, nor gives its page, every change since."""

    def __init__(self, position: Position | None) -> None:
        self.position = position
        self._seen: dict[str, tuple[int, str, bool, float]] = {}

    def jump(self, store: Store) -> None:
        """Go to the feed's newest position (read before the page is brought up to date,
        so what is committed meanwhile is given after)."""
        self.position = newest(store)

    def read(self, store: Store) -> list[RunChange] | None:
        """The changes not given yet, oldest first; None: more than ``BATCH`` were
        written past the position, and the window jumped to the newest."""
        start = self.position
        after = None if start is None else (start[0] - LOOKBACK_SECONDS, "")
        fresh: list[RunChange] = []
        beyond = 0  # changes read past the position the read started from
        while True:
            found = store.runs_changed(after, BATCH) if after is not None else []
            if after is None:  # an empty store when the stream began: follow from its start
                found = store.runs_changed((0.0, ""), BATCH)
            for change in found:
                if start is None or change.position > start:
                    beyond += 1
                mark = (change.last_seq, change.status, change.late, change.updated_at)
                if self._seen.get(change.id, (None,))[:3] != mark[:3]:
                    self._seen[change.id] = mark
                    fresh.append(change)
                if self.position is None or change.position > self.position:
                    self.position = change.position
            if beyond > BATCH:  # far behind: the page is brought up to date whole
                self.jump(store)
                return None
            if len(found) < BATCH:
                break
            after = found[-1].position  # read on: the part read again filled a read
        if self.position is not None and len(self._seen) > 4 * BATCH:
            horizon = self.position[0] - LOOKBACK_SECONDS
            self._seen = {k: v for k, v in self._seen.items() if v[3] >= horizon}
        return fresh


def _behind(start: Position, now: Position | None) -> bool:
    """Whether a stream starting at ``start`` is too far behind the feed to read on."""
    return now is not None and now[0] - start[0] > BEHIND_SECONDS


def stream(
    request: Request, store: Store, follow: Follow, *, every: float = 0.0
) -> StreamingResponse:
    """The tab's stream, from the page's ``from`` (else from now). A reconnect
    (``Last-Event-ID``) or a ``from`` too far behind the feed starts at the feed's
    newest position, the page brought up to date whole first (``follow(None)``).
    ``every``: follow the changes at most once in that many seconds (a page of
    aggregates, recomputed per change): what comes meanwhile is read, and followed,
    together; and once more ``every`` seconds after the last changes (with none), so a
    page whose aggregates are shared, computed at most once in that time by whichever tab
    asks first (``keel.server.dashboard.shared``), is given the one that holds them."""
    resumed = bool(request.headers.get("Last-Event-ID"))
    start = _position(request.query_params.get("from"))
    closing: threading.Event = request.app.state.closing

    async def events() -> AsyncIterator[str]:
        head = await run_in_threadpool(newest, store)
        whole = resumed or (start is not None and _behind(start, head))
        window = Window(head if whole or start is None else start)
        yield f"retry: {RETRY_MS}\n\n"
        if whole:
            for event in await run_in_threadpool(follow, None):
                yield _frame(event, window.position)
        yield _frame(Event("caught-up", {}), window.position)
        quiet_since = checked = time.monotonic()
        followed = quiet_since if whole else 0.0  # when follow last ran (monotonic)
        owed = whole and every > 0  # followed: follow once more ``every`` after
        while not closing.is_set():
            if await request.is_disconnected():
                return
            if time.monotonic() - checked >= SESSION_CHECK_SECONDS:
                now = request.app.state.access.clock()
                if await session_identity(request, now) is None:
                    yield _frame(Event("signed-out", {}), None)
                    return
                checked = time.monotonic()
            rest = followed + every - time.monotonic()
            if rest > 0:  # followed a moment ago: let changes gather meanwhile
                await asyncio.sleep(min(rest, every))
                continue
            changes = await run_in_threadpool(window.read, store)
            if changes is None or changes or owed:
                owed = every > 0 and changes != []
                for event in await run_in_threadpool(follow, changes):
                    yield _frame(event, window.position)
                quiet_since = followed = time.monotonic()
            elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream", headers={
        "Cache-Control": "no-store", "X-Accel-Buffering": "no",
    })  # fmt: skip

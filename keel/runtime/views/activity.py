"""What a run that has not ended is doing right now, in words, for ``keel runs``,
``keel show`` and the header of ``keel why``: its status says *running* whether a worker
executes it, its attempts wait on the queue for a worker, for a retry's backoff or a
full concurrency key, or it waits for a person or a time.

It is read from the store's live rows, not the history: the run's attempts on the ready
queue (``ready_attempts``: who holds each, what each needs before a claim may take it)
and its open waits (``waits``). A run that has none of them and has not ended is
stalled: nothing will move it. An attempt on the queue that no worker holds waits for
what holds it back (a retry's backoff, and the checks of ``keel why`` in
``keel.runtime.views.holds``: its circuit, its concurrency key, its rate key), else
for a worker; whether one took it before (and gave it back, or died) is in the
history, and ``keel why`` says it.

Two queries a run, and one more per circuit, concurrency key or rate key its queued
attempts wait on: cheap enough for every row of a list. What only the history knows
makes the words exact when the caller has read it (``keel show``, ``keel why``): the
attempt numbers since the last retry by hand and the retry budget (``state``), who
paused the run (``paused``). Times are in words in the local time of the process that
says them, to the second (with the date when it is not today's).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from keel.engine.events import RunPaused, RunUnpaused
from keel.engine.state import RunState
from keel.runtime.views.holds import Hold, StoreHolds
from keel.runtime.views.why_reasons import CircuitOpen, ConcurrencyFull, Paused
from keel.store.protocol import Store
from keel.store.records import QueuedAttempt, RunRecord, StoredEvent

#: run statuses for which there is something to say
ACTIVE = ("pending", "running", "failing")
#: the most attempts of one run read from the ready queue (a big map has one per item)
READY_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Activity:
    #: ``running`` (a worker holds an attempt), ``queued`` (attempts wait on the queue,
    #: none is held: ``text`` says for what), ``waiting`` (only waits are open),
    #: ``stalled`` (nothing is held, queued or open), ``paused`` (said only when who
    #: paused it is known)
    kind: str
    #: in words: "running on host:1234", "queued, waiting for a worker", "retrying at
    #: 17:29:51 (attempt 3 of 4)", "waiting for approval", "running on host:1234;
    #: waiting for timer"...
    text: str

    @property
    def short(self) -> str:
        """The gist, for a list of runs: what ``text`` says first, without the host or
        the details (in brackets, or after a colon)."""
        first = self.text.split("; ")[0]
        return "running" if self.kind == "running" else first.split(" (")[0].split(": ")[0]


def _worker(owner: str) -> str:
    """``host:pid`` of a lease owner (``host:pid:thread:nonce``)."""
    return ":".join(owner.split(":")[:2])


def clock_words(at: float, now: float) -> str:
    """A time to the second, local: its date too when that is not ``now``'s."""
    when = datetime.datetime.fromtimestamp(at)
    same_day = when.date() == datetime.datetime.fromtimestamp(now).date()
    return when.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")


def pause_in(history: Iterable[StoredEvent]) -> Paused | None:
    """The pause in force at the end of ``history``: by whom, since when, why."""
    paused = None
    for stored in history:
        event = stored.event
        if isinstance(event, RunPaused):
            paused = Paused(by=event.by, since=stored.at, reason=event.reason)
        elif isinstance(event, RunUnpaused):
            paused = None
    return paused


def run_activity(
    store: Store, record: RunRecord, now: float, *,
    state: RunState | None = None, paused: Paused | None = None,
) -> Activity | None:  # fmt: skip
    """What the run is doing now; None for a run that ended, or is paused when who
    paused it is not given (its status says it all). ``state`` and ``paused``: what the
    run's history says, when the caller has read it (see the module's docstring)."""
    if record.status == "paused" and paused is not None:
        return _paused(store, record, now, paused)
    if record.status not in ACTIVE:
        return None
    ready = store.ready_attempts(record.id, READY_LIMIT)
    waits = store.waits(run_id=record.id)
    leased = [row for row in ready if row.owner is not None]
    queued = [row for row in ready if row.owner is None]
    if len(ready) >= READY_LIMIT:  # more than were read: count them
        queued_count = store.ready_count(record.id) - len(leased)
    else:
        queued_count = len(queued)
    parts: list[str] = []
    live = _running(leased, now)
    if live:
        parts.append(live)
    if any(_expired(row, now) for row in leased):
        parts.append("held by a worker that stopped (its lease expired; another takes it)")
    if queued and not leased:
        parts.append(_queued(queued, StoreHolds(store, now), now, state))
    elif queued_count > 0:
        parts.append(f"{queued_count} more queued")
    if waits:
        kinds = sorted({wait.waits_for for wait in waits}, key=_wait_order)
        parts.append("waiting for " + ", ".join(_WAIT_WORDS.get(k, k) for k in kinds))
    if live:
        kind = "running"
    elif leased or queued_count > 0:
        kind = "queued"
    elif waits:
        kind = "waiting"
    else:
        return Activity("stalled", "stalled: nothing is running, queued or waiting")
    return Activity(kind, "; ".join(parts))


def _expired(row: QueuedAttempt, now: float) -> bool:
    return row.lease_expires is not None and row.lease_expires < now


def _running(leased: list[QueuedAttempt], now: float) -> str | None:
    """ "running on host:pid" (or "on N workers") for the attempts held by a live lease."""
    workers = sorted({_worker(row.owner) for row in leased
                      if row.owner is not None and not _expired(row, now)})  # fmt: skip
    if not workers:
        return None
    return f"running on {workers[0] if len(workers) == 1 else f'{len(workers)} workers'}"


def _paused(store: Store, record: RunRecord, now: float, paused: Paused) -> Activity:
    """ "paused by ops since 17:20:01: why", and the attempts still running (they finish)."""
    since = "" if paused.since is None else f" since {clock_words(paused.since, now)}"
    text = f"paused by {paused.by or 'someone'}{since}"
    if paused.reason:
        text += f": {paused.reason}"
    live = _running([r for r in store.ready_attempts(record.id, READY_LIMIT) if r.owner], now)
    return Activity("paused", text if live is None else f"{text}; still {live}")


def _queued(
    queued: list[QueuedAttempt], holds: StoreHolds, now: float, state: RunState | None
) -> str:
    """What the run's queued attempts (none held by a worker) wait for: a worker, if
    any of them may be taken now; else what holds the first back."""
    first: str | None = None
    for row in queued:
        said = _held_back(row, holds, now, state)
        if said is None:
            return "queued, waiting for a worker"
        first = first or said
    return first or "queued, waiting for a worker"


def _held_back(
    row: QueuedAttempt, holds: StoreHolds, now: float, state: RunState | None
) -> str | None:
    """What holds a queued attempt back, in the order of ``keel why`` (None: nothing)."""
    if row.held:
        return "held by the run's pause"
    retrying = _retrying(row, now, state)
    if retrying is not None:
        return retrying
    hold = holds.first(row)
    return None if hold is None else _hold_words(hold, now)


def _retrying(row: QueuedAttempt, now: float, state: RunState | None) -> str | None:
    """A retry waiting for its backoff: an attempt after the first (since the last retry
    by hand) queued for later. A first attempt queued for later (given back by a worker
    without its code) waits for a worker, as far as the queue shows."""
    ready = row.ready
    if ready.available_at <= now:
        return None
    node = None if state is None else state.nodes.get(ready.node)
    attempt = ready.attempt - (0 if node is None else node.attempt_base)
    if attempt <= 1:
        return None
    at = clock_words(ready.available_at, now)
    if state is None or node is None:  # the budget and the numbering are the history's
        return f"retrying at {at}"
    limit = state.plan.nodes[ready.node].max_attempts
    return f"retrying at {at} (attempt {attempt} of {limit})"


def _hold_words(hold: Hold, now: float) -> str:
    if isinstance(hold, ConcurrencyFull):
        return (f"waiting for concurrency key {hold.key!r} ({len(hold.holders)} of "
                f"{hold.limit} held)")  # fmt: skip
    if isinstance(hold, CircuitOpen):
        if hold.until is not None:
            return f"circuit {hold.circuit!r} open until {clock_words(hold.until, now)}"
        return f"circuit {hold.circuit!r} half-open (its probe is out)"
    return (f"rate-limited by {hold.key!r} until {clock_words(hold.until, now)} "
            f"({hold.limit} per {hold.per:g} s)")  # fmt: skip


_WAIT_WORDS = {"subworkflow": "child run"}


def _wait_order(kind: str) -> int:
    order = ("approval", "signal", "timer", "subworkflow")
    return order.index(kind) if kind in order else len(order)

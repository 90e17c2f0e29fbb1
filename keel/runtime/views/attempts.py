"""Every attempt of a run, read from its history: when it was queued, when a worker
started it, when it ended and how, what it was given and what it gave back. The run
page's timeline (queued vs running per attempt, retries as bars of their own, child
runs), its input/output per attempt and its log links all read this one fold.

An attempt is one ``(node, item, attempt)``: a task's try, one item's try of a map, or a
wait (an approval, a timer, a signal, a child run) from when it opened to when it was
resolved. An attempt taken back from a worker that died (``NodeReclaimed``) and started
again keeps its number, but shows as two segments: the one cut short, then the next.
Attempts still open when the run ended are ``cancelled``: their outcome, if it came,
was discarded. Pure: a history in, values out; times are the history's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from keel.engine.events import (
    ChildRunEnded,
    ErrorInfo,
    LateResultDiscarded,
    NodeAwaiting,
    NodeFailed,
    NodeReclaimed,
    NodeScheduled,
    NodeSetByHand,
    NodeStarted,
    NodeSucceeded,
    NodeWithdrawn,
    RunEnded,
)
from keel.store.records import StoredEvent

#: what became of an attempt: still ``queued`` or ``running`` (a wait: ``waiting``), or
#: ended ``succeeded``, ``failed``, ``reclaimed`` (its worker died: it ran again),
#: ``withdrawn`` (taken off the queue: the run was failing) or ``cancelled`` (the run
#: ended first)
OPEN = frozenset({"queued", "running", "waiting"})


@dataclass(slots=True)
class Attempt:
    node: str
    #: the map item (None: the node itself)
    item: int | None
    attempt: int
    #: when it went on the ready queue (None: a wait, which is never queued)
    queued_at: float | None = None
    #: when it may be taken at the earliest (a retry's backoff), if later than queued
    not_before: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str = "queued"
    #: the worker that started it (``host:pid:...``)
    worker: str | None = None
    #: what it was given (``NodeScheduled.args``)
    args: dict[str, Any] | None = None
    output: Any = None
    error: ErrorInfo | None = None
    #: a wait: what for (``approval``, ``timer``, ``signal``, ``subworkflow``)
    waits_for: str | None = None
    #: a child run this attempt started (a subworkflow wait)
    child_run: str | None = None

    @property
    def queued_for(self) -> float | None:
        """Seconds between queued (or its backoff's end) and started."""
        if self.queued_at is None or self.started_at is None:
            return None
        return max(0.0, self.started_at - max(self.queued_at, self.not_before or 0.0))

    @property
    def ran_for(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)


Key = tuple[str, int | None, int]


def attempts_of(history: Iterable[StoredEvent]) -> list[Attempt]:
    """The run's attempts in the order they were first queued or opened."""
    found: list[Attempt] = []
    current: dict[Key, Attempt] = {}  # the latest segment of each attempt
    waits: dict[str, Attempt] = {}  # a node's open wait (waits have no item)

    def close(attempt: Attempt, at: float, outcome: str) -> None:
        attempt.ended_at, attempt.outcome = at, outcome

    for stored in history:
        event, at = stored.event, stored.at
        if isinstance(event, NodeScheduled):
            made = Attempt(event.node, event.item, event.attempt, queued_at=at,
                           not_before=event.not_before, args=event.args)  # fmt: skip
            current[(event.node, event.item, event.attempt)] = made
            found.append(made)
        elif isinstance(event, NodeStarted):
            key = (event.node, event.item, event.attempt)
            seen = current.get(key)
            if seen is None or seen.outcome != "queued":  # started again after a reclaim
                seen = Attempt(event.node, event.item, event.attempt,
                               args=None if seen is None else seen.args)  # fmt: skip
                current[key] = seen
                found.append(seen)
            seen.started_at, seen.worker, seen.outcome = at, event.worker, "running"
        elif isinstance(event, NodeReclaimed):
            seen = current.get((event.node, event.item, event.attempt))
            if seen is not None and seen.outcome in OPEN:
                close(seen, at, "reclaimed")
                # it goes back on the queue with the same number
                again = Attempt(event.node, event.item, event.attempt, queued_at=at,
                                args=seen.args)  # fmt: skip
                current[(event.node, event.item, event.attempt)] = again
                found.append(again)
        elif isinstance(event, NodeSucceeded | NodeFailed | NodeWithdrawn):
            seen = current.get((event.node, event.item, event.attempt))
            if seen is None and event.item is None:
                seen = waits.get(event.node)  # a wait resolved
            if seen is None or seen.outcome not in OPEN:
                continue
            if isinstance(event, NodeSucceeded):
                seen.output = event.output
                close(seen, at, "succeeded")
            elif isinstance(event, NodeFailed):
                seen.error = event.error
                close(seen, at, "failed")
            else:
                close(seen, at, "withdrawn")
            if event.item is None:
                waits.pop(event.node, None)
        elif isinstance(event, LateResultDiscarded):
            continue  # its attempt ended already (reclaimed, or the run ended)
        elif isinstance(event, NodeAwaiting):
            opened = Attempt(event.node, None, event.attempt, started_at=at,
                             outcome="waiting", waits_for=event.waits_for)  # fmt: skip
            run_id = event.details.get("run_id") if event.waits_for == "subworkflow" else None
            opened.child_run = run_id if isinstance(run_id, str) else None
            waits[event.node] = opened
            current[(event.node, None, event.attempt)] = opened
            found.append(opened)
        elif isinstance(event, ChildRunEnded):
            child = waits.get(event.node)
            if child is not None and child.child_run is None:
                child.child_run = event.run_id
        elif isinstance(event, NodeSetByHand):
            by_hand = waits.pop(event.node, None)
            if by_hand is not None and by_hand.outcome in OPEN:
                by_hand.output = event.output
                close(by_hand, at, "succeeded")
        elif isinstance(event, RunEnded):
            for attempt in found:
                if attempt.outcome in OPEN:
                    close(attempt, at, "cancelled")
            waits.clear()
    return found

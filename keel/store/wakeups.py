"""Wake-ups: what a store that notifies (``Store.listen``) tells other processes a commit
left for them, as typed values.

A transition that queues attempts, sets a timer, fills the outbox or frees a place under
a limit says so (``wakeups_of``); PostgreSQL sends each as a ``NOTIFY`` payload on
commit (``encode``) and its listener turns payloads back into values (``decode``), so
the worker matches on types and no string is parsed outside this module. A wake-up only
says where to look: the look finds out what there is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import assert_never

from keel.store.records import Ready
from keel.store.writes import Hold, Notify, SetTimer, Transition


@dataclass(frozen=True, slots=True)
class WorkQueued:
    """Attempts were queued on ``queue`` (None: on any queue, or a place under a limit
    came free), available from ``at`` (run-clock seconds; 0: now)."""

    queue: str | None
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class TimerSet:
    """A timer was set, due at ``due``."""

    due: float


@dataclass(frozen=True, slots=True)
class OutboxFilled:
    """Notifications were put in the outbox."""


@dataclass(frozen=True, slots=True)
class MaybeMissed:
    """Wake-ups may have been lost (the listener reconnected): look at everything."""


Wakeup = WorkQueued | TimerSet | OutboxFilled | MaybeMissed


def wakeups_of(t: Transition, unleased: Sequence[Ready]) -> set[Wakeup]:
    """What a committed transition left for other processes: the attempts it queued and
    did not lease to its own worker, its timers, its notifications, a released hold."""
    found: set[Wakeup] = {WorkQueued(ready.queue, ready.available_at) for ready in unleased}
    for write in t.writes:
        if isinstance(write, SetTimer):
            found.add(TimerSet(write.timer.due_at))
        elif isinstance(write, Notify):
            found.add(OutboxFilled())
        elif isinstance(write, Hold) and not write.held:
            found.add(WorkQueued(None))
    return found


def encode(wakeup: Wakeup) -> str:
    """The payload of a ``NOTIFY``: ``ready QUEUE AT`` (``*``: any queue), ``timer DUE``,
    ``outbox`` or ``*``."""
    match wakeup:
        case WorkQueued(queue=queue, at=at):
            return f"ready {'*' if queue is None else queue} {at!r}"
        case TimerSet(due=due):
            return f"timer {due!r}"
        case OutboxFilled():
            return "outbox"
        case MaybeMissed():
            return "*"
        case _:
            assert_never(wakeup)


def decode(payload: str) -> Wakeup:
    """A payload back as a value; anything not understood (another keel's) as
    ``MaybeMissed``, which makes the worker look everywhere: never a missed wake-up."""
    kind, _, rest = payload.partition(" ")
    try:
        if kind == "ready":
            queue, _, at = rest.rpartition(" ")
            return WorkQueued(None if queue == "*" else queue, float(at or 0))
        if kind == "timer":
            return TimerSet(float(rest))
    except ValueError:
        return MaybeMissed()
    return OutboxFilled() if kind == "outbox" else MaybeMissed()


def encode_all(wakeups: Iterable[Wakeup]) -> list[str]:
    """Payloads in a stable order (NOTIFY sends one per distinct payload)."""
    return sorted({encode(wakeup) for wakeup in wakeups})

"""When a test's fake clock may jump on its own: to the next moment something of the run
becomes due by itself, once nothing can run now.

What is due by itself: a retry waiting for its backoff (an attempt on the ready queue
not available yet), a timer node's time, a child run's end told to its parent, a
cancel. A run's deadline, its expected duration and a child run's timeout are due by
themselves too, except while some run of the test waits for a person or a signal: then
the test is to act first (or ``advance`` the clock). The time of an approval or a signal
(its timeout) is never jumped to: the clock stops before it, and ``advance`` passes it.

An attempt held back by a rate limit or an open circuit is due at no time the store
keeps: the clock does not jump for it (the run stays ``running``; ``advance`` moves on).

The store is the test's own (in memory), so every run in it belongs to the test's run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.engine.state import is_finished
from keel.runtime.waiting import CANCEL, child_timer, wait_timer

if TYPE_CHECKING:
    from keel.store.protocol import Store

#: waits a test acts on (``approve``, ``reject``, ``signal``)
PEOPLE = frozenset({"approval", "signal"})
#: a timer due later than any a run could set (365 days is the longest duration)
_FAR = 1e15
#: the keys' beginnings of a waiting node's timer and of a child's end told to its parent
_WAIT, _CHILD = wait_timer(""), child_timer("")


def next_due(store: Store, now: float) -> float | None:
    """When the fake clock should jump to, or None: nothing is due by itself before the
    next thing the test must do (or nothing is due at all)."""
    waits = {(wait.run_id, wait.node): wait.waits_for for wait in store.waits(limit=10_000)}
    people = any(kind in PEOPLE for kind in waits.values())
    due: list[float] = []
    stop = float("inf")  # the clock must not pass this by itself
    for timer in store.due_timers(_FAR, 10_000):
        if timer.due_at <= now:
            continue  # fired on the next turn
        if timer.key.startswith(_WAIT):
            kind = waits.get((timer.run_id, timer.key[len(_WAIT) :]), "")
            if kind in PEOPLE:
                stop = min(stop, timer.due_at)
                continue
            automatic = kind == "timer" or not people
        else:
            automatic = timer.key == CANCEL or timer.key.startswith(_CHILD) or not people
        if automatic:
            due.append(timer.due_at)
        else:
            stop = min(stop, timer.due_at)
    for record in store.list_runs(limit=10_000):
        if is_finished(record.status):
            continue
        for queued in store.ready_attempts(record.id):
            if queued.owner is None and not queued.held and queued.ready.available_at > now:
                due.append(queued.ready.available_at)
    if not due or min(due) >= stop:
        return None
    return min(due)

"""Firing due timers, and knowing when to look for them next.

Timers are rows in the store (a deadline, a waiting node's time, a child run's end told
to its parent); any worker may fire one once it is due. Every worker may find the same
timer due: the run's sequence number lets one transition through, and the others find
the timer gone when they look again.

Polling, the pump looks every ``every`` seconds. With a store that notifies, it looks
when the next timer the store knows of is due, at the latest ``fallback`` seconds
later (a new timer is notified: ``wake_at``); a timer already due but left (another
run's, when this worker executes only some runs) is looked at again ``every`` later.

Times are the run clock's: a timer's due time is a durable decision.
"""

from __future__ import annotations

from collections.abc import Callable

from keel.errors import RunNotFoundError
from keel.runtime.clock import Paced
from keel.runtime.runs import RunCache
from keel.runtime.worker.transitions import timer_fired
from keel.store.protocol import Store
from keel.store.records import Timer
from keel.store.writes import Transition

#: due timers taken from the store per look
BATCH = 100


class TimerPump(Paced):
    def __init__(
        self,
        store: Store,
        cache: RunCache,
        commit: Callable[[Transition], int],
        *,
        every: float,
        fallback: float | None = None,
    ) -> None:
        """``commit``: commits a transition no lease waits on, 1 if it went in.
        ``fallback``: with a store that notifies, the longest time between looks."""
        self.store = store
        self.cache = cache
        self.commit = commit
        self.every = every
        self.fallback = fallback
        self._next = float("-inf")

    def wake_at(self, due: float) -> None:
        """A timer due at ``due`` was set: look by then."""
        self._next = min(self._next, due)

    def run(self, now: float, run_ids: list[str] | None = None) -> int:
        """Fire what is due, when it is time to look; how many fired."""
        if not self.due(now):
            return 0
        fired = self.fire(now, run_ids)
        self._next = now + self.every
        if self.fallback is not None:  # sleep until the next timer; a new one is notified
            upcoming = self.store.next_timer_at()
            self._next = now + self.fallback
            if upcoming is not None:  # one left due is another run's: not in a hurry
                soon = upcoming if upcoming > now else now + self.every
                self._next = min(self._next, soon)
        return fired

    def fire(self, now: float, run_ids: list[str] | None = None) -> int:
        """Hand the timers due at ``now`` to their runs (those of ``run_ids`` only,
        when given); how many fired."""
        fired = 0
        wanted = set(run_ids) if run_ids is not None else None
        for timer in self.store.due_timers(now, BATCH):
            if wanted is not None and timer.run_id not in wanted:
                continue
            fired += self._fire(timer, now)
        return fired

    def _fire(self, timer: Timer, now: float) -> int:
        try:
            state = self.cache.state(timer.run_id)
        except RunNotFoundError:
            return 0
        return self.commit(timer_fired(state, timer, now, self.cache))

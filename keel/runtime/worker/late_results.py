"""Results of attempts that came after their timeout: recorded as discarded.

A task run in a thread cannot be stopped: at its timeout the attempt is failed anyway,
and whatever the thread returns later (``Executor``'s ``on_late``, on that thread) is
put here. The worker records each on its own thread as ``LateResultDiscarded``, so the
history says the body did finish, and that its result was not used. When the run moved
meanwhile (another transition came first), it is tried again at the next turn.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable

from keel.errors import RunNotFoundError
from keel.runtime.clock import Clock, Inbox
from keel.runtime.execution.invoke import Outcome
from keel.runtime.execution.task_logs import about
from keel.runtime.runs import RunCache
from keel.runtime.worker.attempt_lines import traced
from keel.runtime.worker.transitions import late_discarded
from keel.store.records import Lease
from keel.store.writes import Transition

log = logging.getLogger("keel.worker")

Late = tuple[Lease, Outcome]


class LateResults:
    def __init__(
        self,
        cache: RunCache,
        commit: Callable[[Transition], int],
        overdue: Callable[[], int],
    ) -> None:
        """``commit``: commits a transition no lease waits on, 1 if it went in.
        ``overdue``: how many timed-out threads still run (their results are to come)."""
        self.cache = cache
        self.commit = commit
        self.overdue = overdue
        self.inbox: Inbox[Late] = Inbox(lambda: self.overdue() > 0)
        #: results taken from the inbox, not recorded yet
        self._held: list[Late] = []

    def put(self, lease: Lease, outcome: Outcome) -> None:
        """A thread's result after its attempt's timeout (called on that thread)."""
        self.inbox.put((lease, outcome))

    def due(self) -> bool:
        return bool(self._held) or not self.inbox.empty()

    def run(self, now: float) -> None:
        """Record the late results that came."""
        while True:
            found = self._next()
            if found is None:
                return
            lease, outcome = found
            try:
                state = self.cache.state(lease.run_id)
            except RunNotFoundError:
                continue
            log.warning(
                "run %s: %s attempt %d returned after its timeout; its result is discarded",
                lease.run_id, lease.node, lease.attempt, extra=traced(about(lease), self.cache),
            )  # fmt: skip
            if not self.commit(late_discarded(state, lease, outcome, now, self.cache)):
                self._held.append(found)  # the run moved meanwhile: next turn
                return

    def _next(self) -> Late | None:
        if self._held:
            return self._held.pop(0)
        try:
            return self.inbox.get_nowait()
        except queue.Empty:
            return None

    def wait(self, clock: Clock, grace: float) -> None:
        """(When the worker stops) wait up to ``grace`` seconds (pacing) for the
        timed-out threads still running to return."""
        until = clock.monotonic() + grace
        while self.overdue():
            left = until - clock.monotonic()
            if left <= 0:
                return
            found = clock.wait(self.inbox, left)
            if found is not None:
                self._held.append(found)

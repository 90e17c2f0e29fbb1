"""Outcomes of attempts as they come back from the task threads, gathered for one commit.

Task threads, and the store's listening thread with its wake-ups, put into one inbox;
the worker's thread takes what came. It may put there itself (a task run on its thread,
an attempt refused before it ran): the inbox is a queue that never blocks a put, and
``collect`` takes what is there before it waits. While some running attempts have not reported
yet, it waits up to ``gather`` seconds for them (group commit: outcomes that finish
together share one transaction, and with ``synchronous=full`` one disk flush, instead
of trickling into several). Outcomes taken but not recorded (their run moved meanwhile,
or the store failed) are kept in ``retry`` and come first next time. Wake-ups are handed
to ``woken`` on the worker's thread, as they are taken.
"""

from __future__ import annotations

import queue
from collections.abc import Callable

from keel.runtime.clock import Clock, Inbox
from keel.runtime.execution.invoke import Outcome
from keel.store.records import Lease
from keel.store.wakeups import Wakeup

Done = tuple[Lease, Outcome]


class Outcomes:
    def __init__(
        self,
        clock: Clock,
        *,
        gather: float,
        running: Callable[[], int],
        woken: Callable[[Wakeup], None],
    ) -> None:
        """``running``: how many attempts run whose outcome was not recorded yet."""
        self.clock = clock
        self.gather = gather
        self.running = running
        self.woken = woken
        self.inbox: Inbox[Done | Wakeup] = Inbox(lambda: running() > 0)
        self.retry: list[Done] = []

    def put(self, lease: Lease, outcome: Outcome) -> None:
        """An attempt ended (called on the thread that ran it)."""
        self.inbox.put((lease, outcome))

    def wake(self, wakeup: Wakeup) -> None:
        """A wake-up from the store (called on its listening thread)."""
        self.inbox.put(wakeup)

    def collect(self, timeout: float) -> list[Done]:
        """The outcomes to record now: those kept, else those that came, waiting up to
        ``timeout`` for a first one; then, briefly, for the other running attempts."""
        found, self.retry = self.retry, []
        if timeout > 0 and not found:
            first = self.clock.wait(self.inbox, timeout)
            if first is not None:
                self._take(found, first)
        try:
            while True:
                self._take(found, self.inbox.get_nowait())
        except queue.Empty:
            pass
        if found and len(found) < self.running():
            self._gather(found)
        return found

    def wait(self, timeout: float) -> None:
        """Nothing to do: wait up to ``timeout`` for an outcome (kept for the next
        ``collect``) or a wake-up."""
        item = self.clock.wait(self.inbox, timeout)
        if item is not None:
            self._take(self.retry, item)

    def _take(self, found: list[Done], item: Done | Wakeup) -> None:
        if isinstance(item, tuple):
            found.append(item)
        else:
            self.woken(item)

    def _gather(self, found: list[Done]) -> None:
        deadline = self.clock.monotonic() + self.gather
        while len(found) < self.running():
            left = deadline - self.clock.monotonic()
            item = self.clock.wait(self.inbox, left) if left > 0 else None
            if item is None:
                return
            self._take(found, item)

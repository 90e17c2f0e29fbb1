"""Delivering what the outbox holds, off the worker's thread.

A transition's notifications are written to the store's outbox with the events that
call for them (``keel.runtime.notifications.outbox``); this pump leases a few that are
due, delivers each on a thread of its own (``DELIVERERS`` at once: a slow webhook never
holds the loop), and records how each went: delivered, or failed and tried again later
with a growing wait until ``MAX_DELIVERIES`` (``redelivery_at``), then given up. One
whose deliverer died is leased again once its lease expires.

It looks at the outbox every ``every`` seconds of the run clock (with a store that
notifies, ``fallback_poll``: a new notification is notified, ``look_now``). Results are
recorded on the worker's thread, at its next turn.

The outbox also holds the ends of runs that completion triggers follow (``kind``
``completion``): delivering one starts the runs that follow (``fire_completion``).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from keel.runtime.clock import Clock, Inbox
from keel.runtime.notifications.outbox import deliver_item, redelivery_at
from keel.runtime.triggers.completion import fire_completion, is_completion
from keel.store.protocol import Store
from keel.store.records import OutboxItem

if TYPE_CHECKING:  # prometheus_client is imported only by a process that counts
    from keel.runtime.metrics import Metrics

log = logging.getLogger("keel.worker")

#: notifications delivered at once, each on a thread of its own
DELIVERERS = 4

Spawn = Callable[[Callable[[], None]], object]
Delivered = tuple[OutboxItem, str | None]


class OutboxPump:
    def __init__(
        self,
        store: Store,
        owner: str,
        clock: Clock,
        *,
        every: float,
        lease_for: float,
        spawn: Spawn | None = None,
        metrics: Metrics | None = None,
        delivered: Callable[[], None] | None = None,
    ) -> None:
        """``spawn`` runs a delivery off this thread (default: a pool of
        ``DELIVERERS`` threads, made on first use); ``metrics``: where to count the runs
        completion triggers start; ``delivered`` is called on the deliverer's thread
        once a delivery ended, to wake the worker: it records the delivery, and claims
        the runs a completion started, at once."""
        self.store = store
        self.owner = owner
        self.clock = clock
        self.every = every
        self.lease_for = lease_for
        self._spawn = spawn
        self._woken = delivered
        self.metrics = metrics
        self._pool: ThreadPoolExecutor | None = None
        self._looked_at = float("-inf")
        #: deliveries started whose result is not recorded yet
        self.delivering = 0
        self._delivered: Inbox[Delivered] = Inbox(lambda: self.delivering > 0)

    def due(self, now: float) -> bool:
        """Whether it is time to look at the outbox."""
        return now - self._looked_at >= self.every

    def next_at(self) -> float:
        return self._looked_at + self.every

    def look_now(self) -> None:
        self._looked_at = float("-inf")

    def run(self, now: float) -> None:
        """Start delivering what is due, when it is time to look; record the deliveries
        that ended."""
        if self.due(now):
            self._looked_at = now
            self.take(now)
        if self.delivering:
            self.record(now)

    def take(self, now: float) -> None:
        """Lease due notifications, as many as there are free deliverers, and start
        delivering them."""
        free = DELIVERERS - self.delivering
        if free <= 0:
            return
        items = self.store.take_notifications(self.owner, now, free, self.lease_for)
        for item in items:
            self.delivering += 1
            self._start(item)

    def _start(self, item: OutboxItem) -> None:
        def deliver() -> None:
            if is_completion(item):  # a run ended that completion triggers follow
                self._delivered.put((item, fire_completion(self.store, item, metrics=self.metrics)))
            else:
                self._delivered.put((item, deliver_item(item)))
            if self._woken is not None:
                self._woken()

        if self._spawn is not None:
            self._spawn(deliver)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(DELIVERERS, thread_name_prefix="keel-notify")
        self._pool.submit(deliver)

    def record(self, now: float) -> None:
        """Record the deliveries that ended."""
        while True:
            try:
                found = self._delivered.get_nowait()
            except queue.Empty:
                return
            self._finish(found, now)

    def _finish(self, found: Delivered, now: float) -> None:
        item, error = found
        self.delivering -= 1
        if error is None:
            self.store.finish_notification(item.id, now)
            return
        log.warning("notifying about run %s failed: %s", item.run_id, error)
        retry_at = redelivery_at(item, now)
        self.store.finish_notification(item.id, now, error=error, retry_at=retry_at)

    def flush(self, timeout: float) -> None:
        """Deliver what is due now, waiting up to ``timeout`` (pacing) for it, before
        the worker stops; what is left stays in the outbox for the next worker."""
        until = self.clock.monotonic() + timeout
        self.take(self.clock.now())
        while self.delivering:
            left = until - self.clock.monotonic()
            if left <= 0:
                return
            found = self.clock.wait(self._delivered, left)
            if found is not None:
                self._finish(found, self.clock.now())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)

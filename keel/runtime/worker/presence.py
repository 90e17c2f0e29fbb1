"""A worker's presence in the store's list of live workers, and who serves a queue.

``keel worker`` registers on its first turn (``keel run`` and ``keel resume`` too, as
workers of their own runs only), is seen again every ``LIVE_WITHIN / 3``
seconds at most (one cheap ``UPDATE`` from the worker loop's maintenance, never per
step), and removes itself when it stops cleanly. A worker is live while it was seen
within ``LIVE_WITHIN`` seconds: a killed worker drops out of the list by itself after
missing a few heartbeats. Times are the store's clock (the database's on PostgreSQL),
so hosts with wrong clocks agree on who is live.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from keel.runtime.owner import Owner
from keel.store import presence as stored
from keel.store.presence import WorkerRecord
from keel.store.protocol import Store
from keel.store.records import RunRecord

#: seconds since a worker was last seen after which it is taken for gone (the store's
#: definition, which ``keel why`` reads the list by too)
LIVE_WITHIN = stored.LIVE_WITHIN
#: seconds after which the row of a worker that never unregistered (it was killed) is
#: removed, when another worker starts
FORGET_AFTER = 7 * 24 * 3600.0


class Presence:
    """One worker's row in the list of live workers."""

    def __init__(
        self,
        store: Store,
        owner: str,
        queues: tuple[str, ...] | None,
        *,
        every: float = LIVE_WITHIN / 3,
        runs: tuple[str, ...] | None = None,
    ) -> None:
        parsed = Owner.parse(owner)
        self.store = store
        self.record = WorkerRecord(
            owner,
            parsed.host if parsed else owner,
            parsed.pid if parsed else 0,
            queues,
            started_at=0.0,
            seen_at=0.0,
            runs=runs,
        )
        self.every = every
        self._seen_at: float | None = None

    def beat(self, now: float) -> None:
        """Register on the first call; then say the worker was seen, when it is due."""
        if self._seen_at is None:
            self.store.forget_workers(seen_before=now - FORGET_AFTER)
            self.record = replace(self.record, started_at=now, seen_at=now)
            self.store.register_worker(self.record)
        elif now - self._seen_at < self.every:
            return
        elif not self.store.worker_seen(self.record.owner, now):  # forgotten meanwhile
            self.store.register_worker(replace(self.record, seen_at=now))
        self._seen_at = now

    def withdraw(self) -> None:
        """The worker stops cleanly: it leaves the list at once."""
        if self._seen_at is not None:
            self.store.unregister_worker(self.record.owner)
            self._seen_at = None


def live_workers(store: Store, now: float) -> list[WorkerRecord]:
    """The workers seen within ``LIVE_WITHIN`` seconds of ``now`` (the store's clock)."""
    return store.live_workers(seen_since=now - LIVE_WITHIN)


def queues_without_worker(store: Store, queues: Iterable[str], now: float) -> list[str]:
    """Those of ``queues`` that no live worker takes, in order."""
    workers = live_workers(store, now)
    return [queue for queue in queues if not any(worker.takes(queue) for worker in workers)]


def run_is_served(store: Store, record: RunRecord, queues: Iterable[str], now: float) -> bool:
    """Whether a live worker will take the run's queued attempts: a ``keel run`` or
    ``keel resume`` executing it (or the run it is a child of), or a ``keel worker`` that
    takes one of ``queues`` (those of the run's steps)."""
    lineage = {record.id}
    parent = record.parent_run
    while parent is not None and parent not in lineage:
        lineage.add(parent)
        parent = store.get_run(parent).parent_run
    wanted = set(queues)
    return any(
        not lineage.isdisjoint(worker.runs)
        if worker.runs is not None
        else any(worker.takes(queue) for queue in wanted)
        for worker in live_workers(store, now)
    )

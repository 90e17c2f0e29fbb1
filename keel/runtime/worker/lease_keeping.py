"""Keeping this worker's leases, taking back those of others, giving its own back.

While it holds attempts, a worker renews its leases every third of their length, so a
lease expires only when its holder stopped renewing. Every ``reclaim_every`` seconds it
puts back on the queue (``NodeReclaimed``) the attempts whose lease expired, and those
held by a dead process on this host (``keel.runtime.owner``) without waiting for
their lease; they run again with the same attempt number and idempotency key. When it
stops (or lost the database for a while) it gives its own leases back.

Renewal and reclaim times are the run clock's (leases are durable, judged by one clock
on every host); how long giving back goes on is pacing time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from keel.runtime.clock import Clock
from keel.runtime.owner import known_dead
from keel.store.protocol import Store
from keel.store.records import StoredEvent

log = logging.getLogger("keel.worker")

#: seconds between looks while giving back attempts whose runs are busy
GIVE_BACK_PAUSE = 0.05


class LeaseKeeper:
    def __init__(
        self, store: Store, owner: str, clock: Clock, *, lease_for: float, reclaim_every: float
    ) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self.lease_for = lease_for
        self.reclaim_every = reclaim_every
        self._renewed_at = float("-inf")
        self._reclaimed_at = float("-inf")

    def renew_due(self, now: float) -> bool:
        return now - self._renewed_at >= self.lease_for / 3

    def reclaim_due(self, now: float) -> bool:
        return now - self._reclaimed_at >= self.reclaim_every

    def next_at(self, holding: bool) -> float:
        """When (run clock) the next renewal (if ``holding``) or reclaim is due."""
        reclaim = self._reclaimed_at + self.reclaim_every
        return min(reclaim, self._renewed_at + self.lease_for / 3) if holding else reclaim

    def run(self, now: float, *, holding: bool) -> list[StoredEvent]:
        """Renew (when this worker ``holding`` attempts) and reclaim, each when due;
        the ``NodeReclaimed`` events of what was put back."""
        if holding and self.renew_due(now):
            self.store.renew(self.owner, now, self.lease_for)
            self._renewed_at = now
        if not self.reclaim_due(now):
            return []
        self._reclaimed_at = now
        return self.reclaim(now)

    def reclaim(self, now: float) -> list[StoredEvent]:
        """Requeue attempts held by dead processes on this host or with expired leases."""
        dead = [owner for owner in self.store.lease_owners() if known_dead(owner)]
        return self.store.reclaim(now, dead_owners=dead)

    def give_back(
        self, reason: str, within: float, observe: Callable[[list[StoredEvent]], None]
    ) -> None:
        """Put this worker's leases back on the queue so another worker takes them now
        (``observe`` gets the events of each look).

        A reclaim leaves alone a run that another process is committing to at that
        moment (it never waits for one), so this looks again until this worker holds
        nothing: a lease left behind would be renewed with the others, and never expire,
        for an attempt nothing runs any more. After ``within`` seconds what is left is
        said in the log (it expires once this worker stops renewing it)."""
        until = self.clock.monotonic() + within
        while True:
            observe(self.store.reclaim(self.clock.now(), dead_owners=[self.owner], reason=reason))
            if self.owner not in self.store.lease_owners():
                return
            if self.clock.monotonic() >= until:
                log.warning("could not give back every attempt this worker holds: their "
                            "runs stayed busy; they go back when their leases expire")  # fmt: skip
                return
            self.clock.sleep(GIVE_BACK_PAUSE)

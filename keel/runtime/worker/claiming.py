"""Taking work from the ready queue, only when work may be waiting there.

The worker's own commits lease what they make ready (lease-on-commit, ``leasing``), so
once a look found the queue drained it looks again only when one of its commits left
work unleased, a reclaim put attempts back, a wake-up says attempts were queued (from
the time they are available), a place held back by a rate limit comes free, or a
``pause`` later for work queued by other processes (``poll``; ``fallback_poll`` with a
store that notifies). While work may be waiting, a commit leases as much as there are
free slots (a map's next items), sparing a claim transaction.

While attempts this worker gave back for want of code become available again, it stands
aside (claims nothing), so that a worker with the code takes them
(``keel.runtime.worker.missing_code``).

When to look is pacing time (``Clock.monotonic``); the claim itself, a durable
decision, is made with the run clock.
"""

from __future__ import annotations

from keel.runtime.clock import Clock
from keel.runtime.worker.transitions import leasing
from keel.store.protocol import Store
from keel.store.records import Claimed, Claims
from keel.store.writes import Transition

#: ``look_at`` meaning "look at the queue on the next turn"
NOW = float("-inf")


class Claiming:
    def __init__(
        self,
        store: Store,
        owner: str,
        clock: Clock,
        *,
        lease_for: float,
        queues: tuple[str, ...] | None,
        pause: float,
    ) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self.lease_for = lease_for
        self.queues = queues
        self.pause = pause
        #: when the next look at the queue is due (pacing); ``NOW`` while work may be waiting
        self.look_at = NOW
        #: whether the next look was asked for because work is likely there (a wake-up,
        #: a commit or reclaim that left some), not only because ``pause`` passed
        self._expected = False
        #: (from, until): while attempts given back for want of code are up for others
        self._aside: list[tuple[float, float]] = []

    def claim(self, free: int, run_ids: list[str] | None = None) -> list[Claimed]:
        """Lease up to ``free`` ready attempts (of ``run_ids`` only, when given), when
        work may be waiting on the queue; else nothing, without asking the store."""
        looked = self.clock.monotonic()  # pacing, not a durable decision: never the run clock
        if free <= 0 or looked < self.look_at or self._standing_aside(looked):
            return []
        now = self.clock.now()
        claimed = self.store.claim(
            self.owner, free, now, self.lease_for, run_ids=run_ids, queues=self.queues,
            expected=self._expected,
        )  # fmt: skip
        if len(claimed) < free:  # drained for now
            self._expected = False
            self.look_at = looked + self.pause
            if isinstance(claimed, Claims) and claimed.retry_at is not None:
                wait = max(0.0, claimed.retry_at - now)  # a rate limit frees a place then
                self.look_at = min(self.look_at, looked + wait)
        return claimed

    def leasing(self, transition: Transition, free: int) -> Transition:
        """Let the transition lease, up to ``free``, what it makes ready; while work may
        be waiting on the queue, more of it too."""
        return leasing(
            transition, free, eager=self.look_at == NOW, owner=self.owner,
            lease_for=self.lease_for, queues=self.queues,
        )  # fmt: skip

    def next_at(self) -> float:
        """When (pacing) the next look at the queue is due."""
        return self.look_at

    def look_now(self) -> None:
        """Work may be waiting on the queue: the next turn looks."""
        self.look_at = NOW
        self._expected = True

    def look_by(self, at: float) -> None:
        """Work will be waiting by ``at`` (pacing): look then at the latest."""
        self.look_at = min(self.look_at, at)
        self._expected = True

    def stand_aside(self, back: float, wait: float) -> None:
        """Attempts given back are available again at ``back`` (pacing): claim nothing
        from then for ``wait`` seconds."""
        self._aside.append((back, back + wait))

    def _standing_aside(self, looked: float) -> bool:
        self._aside = [(start, end) for start, end in self._aside if end > looked]
        ends = [end for start, end in self._aside if start <= looked]
        if ends:
            self.look_at = max(self.look_at, max(ends))
        return bool(ends)

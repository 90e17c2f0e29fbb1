"""Why an attempt on the ready queue has not started (``keel.runtime.views.why``).

Leased, it is running, or its holder is gone (its lease expired, its worker unseen).
Else it is held back by the first of: the run's pause, what put it on the queue for
later (a retry's backoff; workers that gave it back for want of its code, said as such
until one with the code takes it; else just "available at"), its circuit, its
concurrency key, its rate key, the lack of a live worker for its queue; those that hold
too are listed after it (``also``), as they would hold it next. With nothing holding it,
it is just queued, waiting for its turn. The checks are the claim's own
(``keel.store.limits``, the ``free`` queries), read rather than taken, so what
``keel why`` says is what the next claim will find.

Pure, as the rest of ``explain``: the state, times and facts at ``now``.
"""

from __future__ import annotations

from collections.abc import Iterator

from keel.engine.state import RunState
from keel.runtime.owner import known_dead
from keel.runtime.views.holds import circuit_hold, concurrency_hold, rate_hold
from keel.runtime.views.why_facts import Place, StoreFacts, Timeline
from keel.runtime.views.why_reasons import (
    AvailableLater,
    GaveBack,
    LeaseHolderGone,
    NoCode,
    NodeWhy,
    NoLiveWorker,
    Paused,
    Queued,
    Reason,
    RetryBackoff,
    Running,
)
from keel.store.presence import LIVE_WITHIN, WorkerRecord
from keel.store.records import QueuedAttempt


class QueuedRules:
    """The rules for one run's attempts on the ready queue."""

    def __init__(
        self, state: RunState, times: Timeline, facts: StoreFacts, now: float,
        paused: Paused | None,
    ) -> None:  # fmt: skip
        self.state, self.plan, self.times, self.facts = state, state.plan, times, facts
        self.now, self.paused = now, paused
        self.owners = {worker.owner: worker for worker in facts.workers}
        # a worker killed on this host is dead at once, not LIVE_WITHIN later
        self.live = [w for w in facts.workers
                     if w.seen_at >= now - LIVE_WITHIN and not known_dead(w.owner)]  # fmt: skip

    def attempt(self, node_id: str, item: int | None, status: str, row: QueuedAttempt) -> NodeWhy:
        """Why the attempt of ``node_id`` (``item`` of a map) in ``row`` has not started."""
        place = (node_id, item)
        if row.owner is not None:
            return NodeWhy(node=node_id, item=item, status=status, reason=self._held(place, row))
        blockers = list(self._blockers(node_id, place, row))
        if len(blockers) > 1:  # held back: that it would then wait for its turn goes unsaid
            blockers = [reason for reason in blockers if reason.kind != "queued"]
        return NodeWhy(node=node_id, item=item, status=status, reason=blockers[0],
                       also=blockers[1:])  # fmt: skip

    def _held(self, place: Place, row: QueuedAttempt) -> Reason:
        assert row.owner is not None
        worker = self.owners.get(row.owner)
        expired = row.lease_expires is not None and row.lease_expires < self.now
        unseen = worker is not None and worker.seen_at < self.now - LIVE_WITHIN
        if expired or unseen or known_dead(row.owner):
            last_seen = None if worker is None else worker.seen_at
            return LeaseHolderGone(owner=row.owner, last_seen=last_seen,
                                   lease_expires=row.lease_expires)  # fmt: skip
        return Running(owner=row.owner, since=self.times.started_at.get(place),
                       lease_expires=row.lease_expires)  # fmt: skip

    def _blockers(self, node_id: str, place: Place, row: QueuedAttempt) -> Iterator[Reason]:
        """What holds a queued attempt back, in the order it would be found."""
        ready, now = row.ready, self.now
        if row.held or self.paused is not None:
            yield self.paused or Paused(by=None, since=None)
        delayed = self._delayed(node_id, place, row)
        if delayed is not None:
            yield delayed
        # a claim's own checks, in its order (``keel.runtime.views.holds``)
        holders = self.facts.holders.get(ready.limit_key or "", [])
        starts = self.facts.rate_starts.get(ready.rate_key or "", [])
        for hold in (circuit_hold(self.facts.circuits.get(ready.circuit or ""), now),
                     concurrency_hold(row, holders), rate_hold(row, starts, now)):  # fmt: skip
            if hold is not None:
                yield hold
        yield from self._worker(place, row)

    def _delayed(self, node_id: str, place: Place, row: QueuedAttempt) -> Reason | None:
        """What put the attempt on the queue for later, by what put it there last: a
        retry (its backoff), workers without its code (said even once it is available
        again: the next worker may lack it too), else whatever it was (just when)."""
        ready, cause = row.ready, self.times.queued_by.get(place)
        if cause == "no_code":
            return self._no_code(node_id, place, row)
        if ready.available_at <= self.now:
            return None
        if cause == "retry":
            error = self.state.nodes[node_id].error
            return RetryBackoff(
                until=ready.available_at,
                attempt=ready.attempt - self.state.nodes[node_id].attempt_base,
                max_attempts=self.plan.nodes[node_id].max_attempts,
                error=None if error is None else f"{error.type}: {error.message}",
            )  # fmt: skip
        return AvailableLater(queue=ready.queue, since=self._queued_since(place),
                              at=ready.available_at)  # fmt: skip

    def _no_code(self, node_id: str, place: Place, row: QueuedAttempt) -> NoCode:
        """The workers that gave this attempt back for want of its code, and when."""
        ready = row.ready
        given = self.times.gave_back.get((*place, ready.attempt), [])
        counts: dict[str, int] = {}
        for _, owner in given:
            counts[owner] = counts.get(owner, 0) + 1
        return NoCode(
            task=self.plan.nodes[node_id].task, queue=ready.queue,
            workers=[GaveBack(owner=owner, times=times) for owner, times in counts.items()],
            since=min(given[0][0], self.now) if given else self.now,
            next_try=ready.available_at if ready.available_at > self.now else None,
        )  # fmt: skip

    def _queued_since(self, place: Place) -> float | None:
        """When the attempt went on the queue: at the latest now (the history's times
        are the writers' clocks, which may run ahead of the reader's)."""
        since = self.times.queued_at.get(place)
        return None if since is None else min(since, self.now)

    def _serves(self, worker: WorkerRecord, queue: str) -> bool:
        """Whether ``worker`` takes this run's attempts on ``queue`` (a worker of given
        runs takes theirs and their child runs', whatever the queue: as
        ``keel.runtime.worker.presence.run_is_served``)."""
        if worker.runs is not None:
            return not self.facts.lineage.isdisjoint(worker.runs)
        return worker.takes(queue)

    def _worker(self, place: Place, row: QueuedAttempt) -> Iterator[Reason]:
        """No live worker for it (a reason), or one (said only if nothing else holds it:
        then it is just queued, waiting for its turn)."""
        queue, since = row.ready.queue, self._queued_since(place)
        if any(self._serves(worker, queue) for worker in self.live):
            yield Queued(queue=queue, since=since)
            return
        seen = [w.seen_at for w in self.facts.workers if self._serves(w, queue)]
        last_seen = max(seen, default=None)
        start = max([at for at in (since, last_seen) if at is not None], default=self.now)
        yield NoLiveWorker(queue=queue, since=since, for_seconds=max(self.now - start, 0.0),
                           last_seen=last_seen)  # fmt: skip

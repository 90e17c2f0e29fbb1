"""Committing what the worker decided: outcomes of its attempts, and transitions no lease
waits on.

Outcomes that came together are recorded in one ``Store.commit`` (group commit), each
as its own transition (``transitions.recorded``); an attempt whose code this worker
lacks is given back for a worker with the code, this one standing aside meanwhile, or
failed past ``code_wait`` (``keel.runtime.worker.missing_code``). Each run's last
transition in the batch leases what it makes ready to this worker, up to the slots the
batch frees (lease-on-commit), so the run goes on without a claim.

What becomes of each outcome: recorded (its attempt is ``over``); refused because the
run moved meanwhile (it is decided again on the fresh state: ``keep``); refused because
the lease was lost (another worker has the attempt: discarded, ``over``); or the whole
commit failed (all kept; ``StoreUnavailableError`` and ``StorageFaultError`` go on up
to the loop, which knows whether to wait for the database). Every commit tells
``Claiming`` and the timers what it left for them, and the metrics what it recorded
(``noted``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from keel.errors import (
    ConflictError,
    LeaseLostError,
    RunNotFoundError,
    StorageFaultError,
    StoreUnavailableError,
)
from keel.runtime.clock import Clock
from keel.runtime.execution.invoke import Outcome
from keel.runtime.execution.task_access import CODE_MISSING
from keel.runtime.execution.task_logs import TaskLogs, about
from keel.runtime.runs import RunCache
from keel.runtime.worker import transitions
from keel.runtime.worker.attempt_lines import traced
from keel.runtime.worker.claiming import Claiming
from keel.runtime.worker.metering import Metering
from keel.runtime.worker.outcomes import Done
from keel.runtime.worker.run_watch import RunWatch
from keel.store.protocol import Store
from keel.store.records import Claimed, Lease, StoredEvent
from keel.store.writes import Committed, Transition

log = logging.getLogger("keel.worker")


class Recorder:
    def __init__(
        self,
        store: Store,
        cache: RunCache,
        clock: Clock,
        claims: Claiming,
        watch: RunWatch,
        *,
        code_wait: float,
        aside_for: float,
        timer_due: Callable[[], None],
        outbox_due: Callable[[], None],
        metering: Metering | None = None,
        task_logs: TaskLogs | None = None,
    ) -> None:
        """``aside_for``: seconds to stand aside once an attempt given back is available
        again; ``timer_due``: called when a commit set a timer due at once; ``metering``:
        counts what each commit recorded (None: no metrics); ``task_logs``: the lines of
        the attempts, recorded with their outcomes."""
        self.store = store
        self.cache = cache
        self.clock = clock
        self.claims = claims
        self.watch = watch
        self.code_wait = code_wait
        self.aside_for = aside_for
        self.timer_due = timer_due
        self.outbox_due = outbox_due
        self.metering = metering
        self.task_logs = task_logs

    def record(
        self,
        outcomes: list[Done],
        free: int,
        *,
        over: Callable[[Lease], None],
        keep: Callable[[Done], None],
    ) -> tuple[list[StoredEvent], list[Claimed]]:
        """Record the outcomes in one commit, leasing up to ``free`` attempts they make
        ready; the events recorded and the attempts leased. ``over``: an attempt that
        needs nothing more; ``keep``: an outcome to record again next turn."""
        now = self.clock.now()
        done: list[Done] = []
        planned: list[Transition] = []
        for lease, outcome in outcomes:
            transition = self._transition(lease, outcome, now)
            if transition is None:  # the run is gone
                over(lease)
                continue
            done.append((lease, outcome))
            planned.append(transition)
        if not planned:
            return [], []
        planned = transitions.lease_on_commit(planned, free, self.claims.leasing)
        try:
            results = self.store.commit(planned)
        except Exception as exc:
            for transition, item in zip(planned, done, strict=True):
                self.cache.drop(transition.run_id)
                keep(item)  # kept, should the caller go on
            if isinstance(exc, StoreUnavailableError | StorageFaultError):
                raise
            log.exception("recording %d outcomes failed; will retry", len(planned))
            self.claims.look_now()
            return [], []
        recorded: list[StoredEvent] = []
        claimed: list[Claimed] = []
        for result, (lease, outcome) in zip(results, done, strict=True):
            if result.error is None:
                over(lease)
                self.cache.settle(result)
                recorded += result.events
                claimed += result.claimed
                self.noted(result)
                continue
            fields = traced(about(lease), self.cache)  # before the state is dropped
            self.cache.drop(lease.run_id)
            self.claims.look_now()
            if isinstance(result.error, ConflictError):
                keep((lease, outcome))
                continue
            over(lease)
            if isinstance(result.error, LeaseLostError):
                log.info("discarded an outcome: %s", result.error, extra=fields)
            else:
                log.error("cannot record an outcome of run %s: %s", lease.run_id, result.error,
                          extra=fields)  # fmt: skip
        return recorded, claimed

    def _transition(self, lease: Lease, outcome: Outcome, now: float) -> Transition | None:
        try:
            state = self.cache.state(lease.run_id)
        except RunNotFoundError:
            return None
        error = outcome.error
        if error is None or error.type != CODE_MISSING:
            transition = transitions.recorded(state, lease, outcome, now, self.cache)
            if self.task_logs is None:
                return transition
            lines = self.task_logs.closing(
                (lease.run_id, lease.node, lease.item, lease.attempt), now
            )
            return transitions.keeping(transition, lines)
        transition, again_at = transitions.given_back(
            self.store.history(lease.run_id), state, lease, state.plan.nodes[lease.node].task,
            error.message, now=now, code_wait=self.code_wait, cache=self.cache,
        )  # fmt: skip
        if again_at is not None:
            log.info("run %s: %s given back for another worker: %s", lease.run_id, lease.node,
                     error.message, extra=traced(about(lease), self.cache))  # fmt: skip
            self.claims.stand_aside(self.clock.monotonic() + again_at - now, self.aside_for)
        return transition

    def commit_aside(self, transition: Transition) -> int:
        """Commit a transition that no lease of ours is waiting on; 1 if it went in."""
        (result,) = self.store.commit([transition])
        if result.error is not None:
            self.cache.drop(transition.run_id)
            if not isinstance(result.error, ConflictError):
                log.error("run %s: %s", transition.run_id, result.error)
            return 0
        self.noted(result)
        self.cache.settle(result)
        self.watch.observe(result.events)
        return 1

    def noted(self, committed: Committed) -> None:
        """What a commit left for the pumps (work queued and not leased, a timer due
        now) and for the metrics. Every commit of the worker passes here."""
        if self.metering is not None:
            self.metering.committed(committed)
        if transitions.left_unleased(committed):
            self.claims.look_now()
        if transitions.sets_timer_due(committed):
            self.timer_due()  # a run told another something: fire it now
        if transitions.fills_outbox(committed):
            self.outbox_due()  # deliver now, not at the next look (no wake-up comes to us)

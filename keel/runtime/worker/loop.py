"""The worker loop: claim ready attempts, run them, record outcomes, decide, repeat.

One thread (the caller's) owns the store connection and the run states; task code runs
on the executor's threads and hands outcomes back through an inbox (a task proven fast
runs on this thread, in ``_start``, and puts its outcome in the same inbox). Outcomes that arrive
together are recorded in one ``commit`` (group commit), each as its own transition: a
node's outcome, the events it causes and the attempts it makes ready commit together,
and the transition leases what it makes ready to this worker (lease-on-commit), so a run
goes on without a claim. ``keel run`` uses this loop in-process, restricted to its run;
workers run it for all.

Each turn, the loop first lets the pumps beside it do what is due, each in a module of
its own with its own pacing: ``lease_keeping`` (renew, reclaim), ``timer_pump``,
``late_results``, ``outbox_pump``, the ``presence`` beat and (``schedules``) the
``triggers.schedule_pump``. ``claiming`` says when to look at the queue, ``wakeups``
what a notification from the store brings forward, ``transitions`` shapes what the
loop commits.

With a store that notifies (PostgreSQL; SQLite through sockets beside its file), the
worker sleeps until a notification says work was left for it (attempts queued, a timer
set, a notification to send, a place under a limit come free) or until the next timer it
knows of; it looks on its own only every ``fallback_poll`` seconds, in case a
notification was lost. With PostgreSQL its clock is the database's (``clock_for``), so
hosts with wrong clocks agree on leases and timers. All
waiting goes through the clock (``keel.runtime.clock``): nothing here sleeps on its own.

With ``metrics``, the worker counts what it starts and records (``metering``) and
exposes its slots; without, that costs one ``None`` check per batch.

The store rides out lost connections and locks held for a while by itself. When it gives
up (``StoreUnavailableError``), a long-running worker waits for the database and goes on;
``run_until_finished`` (``keel run``) stops with the error. A ``StorageFaultError``
(read-only, disk full) stops both: retrying cannot help.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from keel.errors import StorageFaultError, StoreError, StoreUnavailableError
from keel.runtime.clock import Clock, RunClock, clock_for, with_pacing
from keel.runtime.execution.executor import Executor
from keel.runtime.execution.invoke import Invocation, Outcome, TaskCatalog, make_context
from keel.runtime.execution.task_logs import TaskLogs, about
from keel.runtime.operations.control import record_run
from keel.runtime.owner import Owner
from keel.runtime.runs import RunCache
from keel.runtime.tracing import attempts, run_spans
from keel.runtime.triggers.schedule_pump import SchedulePump
from keel.runtime.worker.attempt_lines import tell
from keel.runtime.worker.claiming import Claiming
from keel.runtime.worker.late_results import LateResults
from keel.runtime.worker.lease_keeping import LeaseKeeper
from keel.runtime.worker.metering import Metering
from keel.runtime.worker.options import WorkerOptions
from keel.runtime.worker.outbox_pump import OutboxPump
from keel.runtime.worker.outcomes import Done, Outcomes
from keel.runtime.worker.presence import LIVE_WITHIN, Presence
from keel.runtime.worker.recording import Recorder
from keel.runtime.worker.run_watch import Observer, RunWatch
from keel.runtime.worker.timer_pump import TimerPump
from keel.runtime.worker.wakeups import Wakeups
from keel.runtime.worker.warm_up import load_hot_path
from keel.spec.model import WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.store.protocol import Store
from keel.store.records import Claimed, Lease, RunRecord, StoredEvent
from keel.store.wakeups import WorkQueued

if TYPE_CHECKING:  # prometheus_client is imported only by a process that counts
    from keel.runtime.metrics import Metrics

__all__ = ["Observer", "Worker", "WorkerOptions"]

log = logging.getLogger("keel.worker")


def _key(lease: Lease) -> tuple[str, str, int | None]:
    return lease.run_id, lease.node, lease.item


def _attempt(lease: Lease) -> tuple[str, str, int | None, int]:
    return lease.run_id, lease.node, lease.item, lease.attempt


class Worker:
    def __init__(
        self,
        store: Store,
        options: WorkerOptions | None = None,
        *,
        clock: Clock | RunClock | None = None,
        observer: Observer | None = None,
        catalog: TaskCatalog | None = None,
        cache: RunCache | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``metrics``: where to count what this worker does (None: nothing is counted)."""
        self.store = store
        self.options = opts = options or WorkerOptions()
        self.clock = with_pacing(clock) if clock is not None else clock_for(store)
        load_hot_path()  # not on the first run's time
        self.observer = observer
        self.owner = str(Owner.for_this_process())
        self.cache = cache or RunCache(store)
        self.catalog = catalog or TaskCatalog()
        self.executor = Executor(opts.concurrency, inline=opts.inline)
        #: attempts started whose outcome is not recorded yet
        self._running: dict[tuple[str, str, int | None], Lease] = {}
        #: what the tasks of those attempts log through ``ctx.logger``, until written
        self.task_logs = TaskLogs(self._running, store.keep_task_logs)
        self.outcomes = Outcomes(self.clock, gather=opts.gather, running=self._running.__len__,
                                 woken=lambda message: self.wakeups.handle(message))  # fmt: skip
        self._stop_listening = store.listen(self.outcomes.wake)
        self.listening = self._stop_listening is not None
        # with a store that notifies, the longest time between looks at the queue, the
        # timers and the outbox (None: polling)
        fallback = opts.fallback_poll if self.listening else None
        self.watch = RunWatch(store, observer)
        self.metering: Metering | None = None
        if metrics is not None:
            keep = max(10_000, 4 * opts.concurrency)
            self.metering = Metering(metrics, self._workflow_of, keep=keep)
            metrics.watch_slots(self._running.__len__, opts.concurrency)
        self.claims = Claiming(
            store, self.owner, self.clock, lease_for=opts.lease_for, queues=opts.queues,
            pause=opts.poll if fallback is None else fallback,
        )  # fmt: skip
        self.recorder = Recorder(
            store, self.cache, self.clock, self.claims, self.watch, code_wait=opts.code_wait,
            aside_for=5 * opts.poll if fallback is None else fallback,
            timer_due=lambda: self.timers.look_now(),
            outbox_due=lambda: self.outbox.look_now(), metering=self.metering,
            task_logs=self.task_logs,
        )  # fmt: skip
        self.leases = LeaseKeeper(store, self.owner, self.clock, lease_for=opts.lease_for,
                                  reclaim_every=opts.reclaim_every)  # fmt: skip
        self.timers = TimerPump(store, self.cache, self.recorder.commit_aside,
                                every=opts.timers_every, fallback=fallback)  # fmt: skip
        self.outbox = OutboxPump(
            store, self.owner, self.clock, lease_for=opts.lease_for,
            every=opts.notify_every if fallback is None else fallback, metrics=metrics,
            delivered=lambda: self.outcomes.wake(WorkQueued(None)),
        )  # fmt: skip
        self.late_results = LateResults(
            self.cache, self.recorder.commit_aside, self.executor.overdue
        )
        self.wakeups = Wakeups(self.clock, opts.queues, self.claims, self.timers, self.outbox)
        self.schedules: SchedulePump | None = None
        if opts.schedules:
            self.schedules = SchedulePump(store, self.cache, clock=self.clock, metrics=metrics)
        self._presence: Presence | None = None
        if opts.announce:
            every = min(opts.lease_for, LIVE_WITHIN) / 3
            self._presence = Presence(store, self.owner, opts.queues, every=every, runs=opts.runs)
        self.watch.on_ended = run_spans.emitter(store, self.cache.state)

    # --- running ----------------------------------------------------------------------------

    def run_until_finished(
        self, run_ids: Iterable[str], stop: threading.Event | None = None
    ) -> list[RunRecord]:
        """Execute the given runs, and only those, until every one has ended; returns
        their records."""
        run_ids = list(run_ids)
        waiting = set(run_ids)
        # a run this worker saw end may have been retried by hand since: look again
        self.watch.ended -= waiting
        # child runs are executed too: those started already, and those started later
        self.watch.add_descendants(run_ids, self._may_have_children)
        claimable = sorted(waiting | self.watch.children)
        idle = False
        while waiting and not (stop is not None and stop.is_set()):
            progressed = self.step(wait=idle, run_ids=claimable)
            waiting -= self.watch.ended
            if waiting and not progressed and idle:
                waiting = {run for run in waiting if not self.watch.run_ended(run)}
            if len(waiting) + len(self.watch.children) != len(claimable):
                claimable = sorted(waiting | self.watch.children)
            idle = not progressed
        self.drain()
        return [self.store.get_run(run) for run in run_ids]

    def _workflow_of(self, run_id: str) -> str:
        """A run's workflow, for the metrics' labels (from the cache: the run was just
        committed); never an error that would stop the worker for a label."""
        try:
            return self.cache.plan_of_run(run_id).spec.name
        except StoreError:
            return ""

    def _may_have_children(self, run_id: str) -> bool:
        """Whether the run's plan starts child runs (from the cache, else its record)."""
        try:
            return self.cache.plan_of_run(run_id).starts_children
        except StoreError:  # a missing run: the look at the store says so as before
            return True

    def run_forever(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set, then finish what runs (within ``stop_grace``)
        and, with ``announce``, leave the list of live workers. While the database is
        unavailable, wait for it (``StorageFaultError`` ends)."""
        idle = False
        while not stop.is_set():
            try:
                idle = not self.step(wait=idle)
            except StoreUnavailableError as exc:
                self._wait_for_store(exc, stop)
                idle = False
        self.drain(self.options.stop_grace)
        if self._presence is not None:
            self._presence.withdraw()

    def _wait_for_store(self, exc: StoreUnavailableError, stop: threading.Event) -> None:
        """The store gave up reaching the database (after retrying for a while): wait
        for it with backoff, then give back every attempt this worker holds. After that
        long its leases may have expired and been taken anyway, and a write whose answer
        was lost may have leased attempts to it that it does not know of."""
        delay = 1.0
        log.warning("waiting for the database: %s", exc)
        while not self.clock.sleep(delay, stop):
            try:
                self.release(reason="its worker lost the database")
            except StoreUnavailableError:
                delay = min(2 * delay, 30.0)
                continue
            self.outcomes.retry.clear()
            self.wakeups.look_everywhere()
            log.warning("the database is back; attempts still running here were given back")
            return

    def step(self, *, wait: bool = False, run_ids: list[str] | None = None) -> bool:
        """One turn: the pumps, record finished attempts, claim new ones. Whether
        anything happened (when not, the next turn may ``wait`` for an outcome)."""
        self._maintain(run_ids)
        outcomes = self.outcomes.collect(self.options.poll if wait and self._running else 0.0)
        recorded = self._record(outcomes) if outcomes else 0
        claimed = self._claim(run_ids)
        if wait and not self._running and not claimed and not recorded:
            self._idle()
        return bool(recorded or claimed)

    def _maintain(self, run_ids: list[str] | None) -> None:
        now = self.clock.now()
        if self._presence is not None:
            self._presence.beat(now)
        self._reclaimed(self.leases.run(now, holding=bool(self._running)))
        self.timers.run(now, run_ids)
        if self.late_results.due():
            self.late_results.run(now)
        self.outbox.run(now)
        self.task_logs.flush(self.clock.monotonic)
        if self.schedules is not None and run_ids is None:
            self.schedules.run(now)

    def _idle(self) -> None:
        """Nothing runs and nothing was found: wait for an outcome or a wake-up, a
        ``poll`` at most; listening, until the next known timer or look."""
        timeout = self.options.poll
        if self.listening:
            now = self.clock.now()
            timeout = min(self.options.fallback_poll, max(0.0, self.timers.next_at() - now),
                          max(0.0, self.claims.next_at() - self.clock.monotonic()))  # fmt: skip
            if self.schedules is not None:  # wake for the next slot
                timeout = min(timeout, max(0.0, self.schedules.next_at() - now))
        self.outcomes.wait(timeout)

    def drain(self, grace: float | None = None) -> None:
        """Wait for the attempts still running and record (or discard) their outcomes,
        then (up to ``late_grace``) for threads still running timed-out attempts.
        ``grace``: give up waiting after that many seconds and put what still runs back
        on the queue, for another worker (its results will not be recorded)."""
        give_up = None if grace is None else self.clock.monotonic() + grace
        while self._running or self.outcomes.retry:
            if give_up is not None and self.clock.monotonic() >= give_up:
                log.warning("%d attempts still running after %.0f s; giving them back",
                            len(self._running), grace)  # fmt: skip
                self.release()
                self.outcomes.retry.clear()
                return
            outcomes = self.outcomes.collect(self.options.poll)
            if outcomes:
                self._record(outcomes)
            self._maintain(None)
        self.late_results.wait(self.clock, self.options.late_grace)
        if self.late_results.due():
            self.late_results.run(self.clock.now())
        self.flush_notifications(self.options.notify_grace)
        for lease in self.executor.overdue_keys():  # daemon threads: they end with us
            node = lease.node if lease.item is None else f"{lease.node}[{lease.item}]"
            log.warning("run %s: abandoned the timed-out thread of node %s, attempt %d",
                        lease.run_id[:8], node, lease.attempt, extra=about(lease))  # fmt: skip

    def announce(self) -> None:
        """List this worker in the live workers now (with ``announce``), before its
        first turn does: a command may then tell others a worker executes its runs."""
        if self._presence is not None:
            self._presence.beat(self.clock.now())

    def close(self) -> None:
        """Give back what this worker holds, leave the live workers and stop its threads."""
        if self._stop_listening is not None:
            self._stop_listening()
        try:
            self.release()
            if self._presence is not None:
                self._presence.withdraw()
        except StoreError as exc:
            # a full or read-only disk is what stopped the worker, and its last line says
            # so: the attempts it holds go back when their leases expire, as ever
            say = log.debug if isinstance(exc, StorageFaultError) else log.warning
            say(
                "could not give back the attempts this worker holds (%s); they return to "
                "the queue when their leases expire",
                exc,
            )
        self.executor.shutdown(wait=False)
        self.outbox.close()

    def release(self, reason: str = "worker stopped", *, within: float = 10.0) -> None:
        """Put this worker's leases back on the queue so another worker takes them now
        (see ``LeaseKeeper.give_back``)."""
        self.leases.give_back(reason, within, self.watch.observe)
        self._running.clear()

    # --- what the pumps do, on demand ---------------------------------------------------------

    def reclaim(self, now: float | None = None) -> list[StoredEvent]:
        """Requeue attempts held by dead processes on this host or with expired leases."""
        events = self.leases.reclaim(self.clock.now() if now is None else now)
        self._reclaimed(events)
        return events

    def fire_timers(self, now: float | None = None, run_ids: list[str] | None = None) -> int:
        """Hand due timers to their runs (a deadline that passed); how many fired."""
        return self.timers.fire(self.clock.now() if now is None else now, run_ids)

    def flush_notifications(self, timeout: float) -> None:
        """Deliver what is due now before stopping (``keel run`` tells of its own failure
        before it exits); what is left stays in the outbox for the next worker."""
        self.outbox.flush(timeout)

    def _reclaimed(self, events: list[StoredEvent]) -> None:
        if events:
            self.claims.look_now()
            if self.metering is not None:
                self.metering.reclaimed(events)
            tell(events, self.cache)
        for stored in events:
            self.cache.observe(stored)
        self.watch.observe(events)

    # --- claim ------------------------------------------------------------------------------

    def start_run(
        self,
        spec: WorkflowSpec,
        run_input: Any,
        *,
        origin: str | None = None,
        run_id: str | None = None,
        registry: SpecRegistry | None = None,
    ) -> str:
        """Start a run whose first attempts this worker leases in the same transaction
        (no claim needed to begin); returns its id. Execute it with ``run_until_finished``.
        ``registry``: where the definitions of its child runs are found (else the store)."""
        free = self.options.concurrency - len(self._running)
        committed = record_run(
            self.store, spec, run_input, clock=self.clock, origin=origin, run_id=run_id,
            cache=self.cache, lease=lambda first: self.claims.leasing(first, free),
            registry=registry,
        )  # fmt: skip
        self.recorder.noted(committed)
        self._begin(committed.claimed)
        self.watch.observe(committed.events + [item.started for item in committed.claimed])
        return committed.transition.run_id

    def _claim(self, run_ids: list[str] | None) -> int:
        """Claim ready attempts, when work may be waiting on the queue (``Claiming``)."""
        claimed = self.claims.claim(self.options.concurrency - len(self._running), run_ids)
        self._begin(claimed)
        self.watch.observe([item.started for item in claimed])
        return len(claimed)

    # --- execute ----------------------------------------------------------------------------

    def _begin(self, claimed: list[Claimed]) -> None:
        if self.metering is not None and claimed:
            self.metering.claimed(claimed)
        for item in claimed:
            self.cache.observe(item.started)
        # a proven-fast task may run on this thread only when it is the one attempt
        # running: the slot is free, and no sibling it may wait for is held up behind it
        alone = len(claimed) == 1 and not self._running
        for item in claimed:
            self._start(item.lease, alone=alone)

    def _start(self, lease: Lease, *, alone: bool = False) -> None:
        state = self.cache.state(lease.run_id)
        plan = state.plan.nodes[lease.node]
        node = state.nodes[lease.node]
        args = node.args if lease.item is None else node.item_args.get(lease.item)
        workflow = state.plan.spec.name
        span = attempts.start_attempt(lease.run_id, workflow, lease.node, lease.attempt,
                                      lease.item, plan.queue, state.trace)  # fmt: skip
        ctx = make_context(lease.run_id, workflow, lease.node, lease.attempt, lease.item, span,
                           self.store)  # fmt: skip
        invocation = Invocation(
            self.catalog, plan.task, dict(args or {}), ctx, plan.retry, plan.isolation
        )
        self._running[_key(lease)] = lease
        done = attempts.ending(span, self._done)
        refused = self.catalog.refusal(plan.task, plan.retry)
        if refused is not None:  # not to run here: recorded (or given back) next turn
            done(lease, refused)
            return
        self.executor.submit(lease, invocation, plan.timeout, done, self.late_results.put,
                             alone=alone)  # fmt: skip

    def _done(self, lease: Lease, outcome: Outcome) -> None:
        if outcome.logs is not None:  # lines a child process sent back
            self.task_logs.absorb(_attempt(lease), outcome.logs)
        self.outcomes.put(lease, outcome)

    # --- record -----------------------------------------------------------------------------

    def _record(self, outcomes: list[Done]) -> int:
        free = self.options.concurrency - len(self._running) + len(outcomes)
        recorded, claimed = self.recorder.record(
            outcomes, free, over=self._over, keep=self.outcomes.retry.append
        )
        self._begin(claimed)
        self.watch.observe(recorded + [item.started for item in claimed])
        tell(recorded, self.cache)
        return len(recorded)

    def _over(self, lease: Lease) -> None:
        self._running.pop(_key(lease), None)
        self.task_logs.end(_attempt(lease))

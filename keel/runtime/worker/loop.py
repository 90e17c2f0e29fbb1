"""The worker loop: claim ready attempts, run them, record outcomes, decide, repeat.

One thread (the caller's) owns the store connection and the run states; task code runs
on the executor's threads and hands outcomes back through a queue. Outcomes that arrive
together are recorded in one ``commit`` (group commit), each as its own transition: a
node's outcome, the events it causes and the attempts it makes ready commit together.
``keel run`` uses this loop in-process, restricted to its run; workers run it for all.

Leases are renewed every third of their length. Attempts whose lease expired, or whose
holder is a dead process on this host, are put back on the queue (``NodeReclaimed``)
and run again with the same attempt number and idempotency key.

With a store that notifies (PostgreSQL), the worker sleeps until a notification says
work was left for it (attempts queued, a timer set, a notification to send, a place
under a limit come free) or until the next timer it knows of; it looks on its own only
every ``fallback_poll`` seconds, in case a notification was lost. Its clock is then the
database's (``clock_for``), so hosts with wrong clocks agree on leases and timers.

The store rides out lost connections and locks held for a while by itself. When it gives
up (``StoreUnavailableError``), a long-running worker waits for the database and goes on;
``run_until_finished`` (``keel run``) stops with the error. A ``StorageFaultError``
(read-only, disk full) stops both: retrying cannot help.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from keel.engine.events import (
    LateResultDiscarded,
    NodeAwaiting,
    NodeFailed,
    NodeSucceeded,
    RunEnded,
)
from keel.engine.plan import NodePlan
from keel.engine.state import is_finished
from keel.errors import (
    ConflictError,
    LeaseLostError,
    RunNotFoundError,
    StorageFaultError,
    StoreError,
    StoreUnavailableError,
)
from keel.runtime.clock import Clock, clock_for
from keel.runtime.execution.executor import Executor
from keel.runtime.execution.invoke import Invocation, Outcome, TaskCatalog, make_context
from keel.runtime.execution.task_access import CODE_MISSING
from keel.runtime.notifications.outbox import deliver_item, redelivery_at
from keel.runtime.operations.control import record_run
from keel.runtime.runs import RunCache, advance, ready_row
from keel.runtime.worker.missing_code import missing_code
from keel.runtime.worker.owner import Owner, known_dead
from keel.runtime.worker.presence import LIVE_WITHIN, Presence
from keel.runtime.worker.timers import timer_causes
from keel.spec.model import WorkflowSpec
from keel.store.protocol import Store
from keel.store.records import (
    CircuitOutcome,
    Claimed,
    Claims,
    Committed,
    Lease,
    OutboxItem,
    RunRecord,
    StoredEvent,
    Timer,
    Transition,
)

log = logging.getLogger("keel.worker")

Observer = Callable[[list[StoredEvent]], None]
#: ``Worker._look_at`` meaning "look at the queue on the next turn"
_NOW = float("-inf")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    #: attempts this worker runs at once
    concurrency: int = 8
    #: seconds a lease lasts without renewal
    lease_for: float = 30.0
    #: seconds to wait for an outcome when there is nothing else to do
    poll: float = 0.05
    #: seconds between looks for dead holders and expired leases
    reclaim_every: float = 2.0
    #: group commit: while some running attempts have not reported, wait up to this long
    #: for them before recording, so outcomes that finish together share one transaction
    #: (one disk flush with ``synchronous=full``) instead of trickling into several
    gather: float = 0.002
    #: seconds between looks for due timers (a run's deadline)
    timers_every: float = 0.5
    #: seconds between looks at the outbox of notifications
    notify_every: float = 0.5
    #: when the worker stops, seconds it waits for threads still running attempts that
    #: were failed at their timeout, to record their results as discarded
    late_grace: float = 10.0
    #: when the worker stops, seconds it lets the notifications due now be delivered
    notify_grace: float = 10.0
    #: the queues this worker takes attempts from (None: every queue)
    queues: tuple[str, ...] | None = None
    #: with a store that notifies: seconds between looks at the queue, the timers and
    #: the outbox when no notification came (a safety net for lost ones)
    fallback_poll: float = 2.0
    #: when asked to stop, seconds to let running attempts finish before giving the
    #: rest back to the queue for another worker (None: wait for all of them)
    stop_grace: float | None = None
    #: list this worker in the store's live workers while it runs (``keel worker``; and
    #: ``keel run``, ``keel resume``, as workers of ``runs``): see ``keel.runtime.worker.presence``
    announce: bool = False
    #: with ``announce``: the runs this worker executes, and only those (None: any run)
    runs: tuple[str, ...] | None = None
    #: seconds an attempt whose task's code this worker lacks is given back for other
    #: workers before it fails (0: it fails at once; see ``keel.runtime.worker.missing_code``)
    code_wait: float = 0.0


def _key(lease: Lease) -> tuple[str, str, int | None]:
    return lease.run_id, lease.node, lease.item


def _with_circuit(transition: Transition, plan: NodePlan, outcome: Outcome) -> Transition:
    """Count the outcome against the node's circuit breaker. Errors that are not
    retryable say the request was wrong, not that the resource is down: not counted."""
    circuit = plan.circuit
    assert circuit is not None
    if outcome.error is not None and not outcome.error.retryable:
        return transition
    counted = CircuitOutcome(
        circuit.name, outcome.error is None, circuit.failures, circuit.cooldown
    )
    return dataclasses.replace(transition, circuits=[counted])


class Worker:
    def __init__(
        self,
        store: Store,
        options: WorkerOptions | None = None,
        *,
        clock: Clock | None = None,
        observer: Observer | None = None,
        catalog: TaskCatalog | None = None,
        cache: RunCache | None = None,
    ) -> None:
        self.store = store
        self.options = options or WorkerOptions()
        self.clock = clock or clock_for(store)
        self.observer = observer
        self.owner = str(Owner.for_this_process())
        self.cache = cache or RunCache(store)
        self.catalog = catalog or TaskCatalog()
        self.executor = Executor(self.options.concurrency)
        #: outcomes of attempts, and wake-ups (strings) from the store's notifications
        self._outcomes: queue.SimpleQueue[tuple[Lease, Outcome] | str] = queue.SimpleQueue()
        #: results of thread attempts that came after their timeout, to record as discarded
        self._late: queue.SimpleQueue[tuple[Lease, Outcome]] = queue.SimpleQueue()
        #: when (run clock) to look for due timers next
        self._timers_next = float("-inf")
        self._notified_at = float("-inf")
        #: notifications being delivered (off the task threads) and their results
        self._delivering = 0
        self._delivered: queue.SimpleQueue[tuple[OutboxItem, str | None]] = queue.SimpleQueue()
        self._notifier_pool: ThreadPoolExecutor | None = None
        self._running: dict[tuple[str, str, int | None], Lease] = {}
        self._retry: list[tuple[Lease, Outcome]] = []
        self._ended: set[str] = set()
        #: child runs of the runs this worker executes (``run_until_finished``)
        self._children: set[str] = set()
        self._renewed_at = float("-inf")
        self._reclaimed_at = float("-inf")
        #: when ``_claim`` next looks at the queue; ``_NOW`` while work may be waiting there
        self._look_at = _NOW
        #: (from, until) on the monotonic clock: while attempts this worker gave back for
        #: want of code become available again, it does not claim, so that a worker with
        #: the code takes them (``keel.runtime.worker.missing_code``)
        self._aside: list[tuple[float, float]] = []
        self._stop_listening = store.listen(self._outcomes.put)
        self.listening = self._stop_listening is not None
        self._presence: Presence | None = None
        if self.options.announce:
            every = min(self.options.lease_for, LIVE_WITHIN) / 3
            self._presence = Presence(
                store, self.owner, self.options.queues, every=every, runs=self.options.runs
            )

    # --- the loop ---------------------------------------------------------------------------

    def run_until_finished(
        self, run_ids: Iterable[str], stop: threading.Event | None = None
    ) -> list[RunRecord]:
        """Execute the given runs, and only those, until every one has ended; returns
        their records."""
        run_ids = list(run_ids)
        waiting = set(run_ids)
        # child runs are executed too: those started already, and those started later
        self._children |= self._descendants(run_ids)
        claimable = sorted(waiting | self._children)
        idle = False
        while waiting and not (stop is not None and stop.is_set()):
            progressed = self.step(wait=idle, run_ids=claimable)
            waiting -= self._ended
            if waiting and not progressed and idle:
                waiting = {run for run in waiting if not self._run_ended(run)}
            if len(waiting) + len(self._children) != len(claimable):
                claimable = sorted(waiting | self._children)
            idle = not progressed
        self.drain()
        return [self.store.get_run(run) for run in run_ids]

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
        while not stop.wait(delay):
            try:
                self.release(reason="its worker lost the database")
            except StoreUnavailableError:
                delay = min(2 * delay, 30.0)
                continue
            self._retry.clear()
            self._look_now()
            self._timers_next = self._notified_at = float("-inf")
            log.warning("the database is back; attempts still running here were given back")
            return

    def step(self, *, wait: bool = False, run_ids: list[str] | None = None) -> bool:
        """One turn: maintenance, record finished attempts, claim new ones. Whether
        anything happened (when not, the next turn may ``wait`` for an outcome)."""
        self._maintain(run_ids)
        outcomes = self._collect(self.options.poll if wait and self._running else 0.0)
        recorded = self._record(outcomes) if outcomes else 0
        claimed = self._claim(run_ids)
        if wait and not self._running and not claimed and not recorded:
            self._idle()
        return bool(recorded or claimed)

    def _idle(self) -> None:
        """Nothing runs and nothing was found: sleep until an outcome or a wake-up comes,
        or (polling) a ``poll`` later; listening, until the next known timer or look."""
        timeout = self.options.poll
        if self.listening:
            now = self.clock.now()
            timeout = min(self.options.fallback_poll, max(0.0, self._timers_next - now),
                          max(0.0, self._look_at - time.monotonic()))  # fmt: skip
        try:
            item = self._outcomes.get(timeout=timeout)
        except queue.Empty:
            return
        if isinstance(item, str):
            self._woken(item)
        else:
            self._retry.append(item)

    def _woken(self, message: str) -> None:
        """A notification from another process (see ``Store.listen``)."""
        kind, _, rest = message.partition(" ")
        if kind == "ready":
            queue_name, _, at = rest.partition(" ")
            wanted = self.options.queues
            if queue_name == "*" or wanted is None or queue_name in wanted:
                delay = float(at or 0) - self.clock.now()
                self._look_at = min(self._look_at, time.monotonic() + max(0.0, delay))
        elif kind == "timer":
            self._timers_next = min(self._timers_next, float(rest))
        elif kind == "outbox":
            self._notified_at = float("-inf")
        else:  # "*": notifications may have been lost
            self._look_now()
            self._timers_next = float("-inf")
            self._notified_at = float("-inf")

    def drain(self, grace: float | None = None) -> None:
        """Wait for the attempts still running and record (or discard) their outcomes,
        then (up to ``late_grace``) for threads still running timed-out attempts.
        ``grace``: give up waiting after that many seconds and put what still runs back
        on the queue, for another worker (its results will not be recorded)."""
        give_up = None if grace is None else time.monotonic() + grace
        while self._running or self._retry:
            if give_up is not None and time.monotonic() >= give_up:
                log.warning("%d attempts still running after %.0f s; giving them back",
                            len(self._running), grace)  # fmt: skip
                self.release()
                self._retry.clear()
                return
            outcomes = self._collect(self.options.poll)
            if outcomes:
                self._record(outcomes)
            self._maintain(None)
        until = time.monotonic() + self.options.late_grace
        while self.executor.overdue() and time.monotonic() < until:
            threading.Event().wait(self.options.poll)
        if not self._late.empty():
            self._record_late(self.clock.now())
        self.flush_notifications(self.options.notify_grace)
        for lease in self.executor.overdue_keys():  # daemon threads: they end with us
            node = lease.node if lease.item is None else f"{lease.node}[{lease.item}]"
            log.warning("run %s: abandoned the timed-out thread of node %s, attempt %d",
                        lease.run_id[:8], node, lease.attempt)  # fmt: skip

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
            log.warning("could not give back the attempts this worker holds (%s); they "
                        "return to the queue when their leases expire", exc)  # fmt: skip
        self.executor.shutdown(wait=False)
        if self._notifier_pool is not None:
            self._notifier_pool.shutdown(wait=False)

    def release(self, reason: str = "worker stopped", *, within: float = 10.0) -> None:
        """Put this worker's leases back on the queue so another worker takes them now.

        A reclaim leaves alone a run that another process is committing to at that
        moment (it never waits for one), so this looks again until this worker holds
        nothing: a lease left behind would be renewed with the others, and never expire,
        for an attempt nothing runs any more. After ``within`` seconds what is left is
        said in the log (it expires once this worker stops renewing it)."""
        until = time.monotonic() + within
        while True:
            events = self.store.reclaim(self.clock.now(), dead_owners=[self.owner], reason=reason)
            self._observe(events)
            if self.owner not in self.store.lease_owners():
                break
            if time.monotonic() >= until:
                log.warning("could not give back every attempt this worker holds: their "
                            "runs stayed busy; they go back when their leases expire")  # fmt: skip
                break
            threading.Event().wait(0.05)
        self._running.clear()

    # --- pieces -----------------------------------------------------------------------------

    def _descendants(self, run_ids: list[str]) -> set[str]:
        found: set[str] = set()
        stack = list(run_ids)
        while stack:
            for child in self.store.list_runs(parent=stack.pop(), limit=1_000_000):
                if child.id not in found:
                    found.add(child.id)
                    stack.append(child.id)
        return found

    def _run_ended(self, run_id: str) -> bool:
        try:
            return is_finished(self.store.get_run(run_id).status)
        except RunNotFoundError:
            return True

    def _observe(self, events: list[StoredEvent]) -> None:
        if not events:
            return
        for stored in events:
            event = stored.event
            if isinstance(event, RunEnded):
                self._ended.add(stored.run_id)
                self._children.discard(stored.run_id)
            elif isinstance(event, NodeAwaiting) and event.waits_for == "subworkflow":
                self._children.add(str(event.details["run_id"]))
        if self.observer is not None:
            self.observer(events)

    def _collect(self, timeout: float) -> list[tuple[Lease, Outcome]]:
        found = self._retry
        self._retry = []
        try:
            if timeout > 0 and not found:
                self._take(found, self._outcomes.get(timeout=timeout))
            while True:
                self._take(found, self._outcomes.get_nowait())
        except queue.Empty:
            pass
        if found and len(found) < len(self._running):
            self._gather(found)
        return found

    def _take(self, found: list[tuple[Lease, Outcome]], item: tuple[Lease, Outcome] | str) -> None:
        if isinstance(item, str):
            self._woken(item)
        else:
            found.append(item)

    def _gather(self, found: list[tuple[Lease, Outcome]]) -> None:
        """Wait briefly for more of the running attempts to report (see ``gather``)."""
        deadline = time.monotonic() + self.options.gather
        while len(found) < len(self._running):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self._take(found, self._outcomes.get(timeout=left))
            except queue.Empty:
                return

    def _done(self, lease: Lease, outcome: Outcome) -> None:
        self._outcomes.put((lease, outcome))

    def _came_late(self, lease: Lease, outcome: Outcome) -> None:
        self._late.put((lease, outcome))

    def _record(self, outcomes: list[tuple[Lease, Outcome]]) -> int:
        now = self.clock.now()
        batch: list[tuple[Transition, Lease, Outcome]] = []
        for lease, outcome in outcomes:
            try:
                state = self.cache.state(lease.run_id)
            except RunNotFoundError:
                self._running.pop(_key(lease), None)
                continue
            if outcome.error is None:
                event: NodeSucceeded | NodeFailed = NodeSucceeded(
                    node=lease.node, attempt=lease.attempt, output=outcome.output, item=lease.item
                )
            else:
                event = NodeFailed(
                    node=lease.node, attempt=lease.attempt, error=outcome.error, item=lease.item
                )
            plan = state.plan.nodes[lease.node]
            if outcome.error is not None and outcome.error.type == CODE_MISSING:
                transition = self._missing_code(lease, plan.task, outcome.error.message, now)
                batch.append((transition, lease, outcome))
                continue
            transition = advance(lease.run_id, state, [event], now, [lease], cache=self.cache)
            if plan.circuit is not None:
                transition = _with_circuit(transition, plan, outcome)
            batch.append((transition, lease, outcome))
        if not batch:
            return 0
        batch = self._lease_on_commit(batch)
        try:
            results = self.store.commit([transition for transition, _, _ in batch])
        except (StoreUnavailableError, StorageFaultError):
            for transition, lease, outcome in batch:  # kept, should the caller go on
                self.cache.drop(transition.run_id)
                self._retry.append((lease, outcome))
            raise
        except Exception:
            log.exception("recording %d outcomes failed; will retry", len(batch))
            for transition, lease, outcome in batch:
                self.cache.drop(transition.run_id)
                self._retry.append((lease, outcome))
            self._look_now()
            return 0
        recorded: list[StoredEvent] = []
        claimed: list[Claimed] = []
        for result, (transition, lease, outcome) in zip(results, batch, strict=True):
            if result.error is None:
                self._running.pop(_key(lease), None)
                self.cache.settle(result)
                recorded += result.events
                claimed += result.claimed
                self._note_unleased(result)
                continue
            self.cache.drop(transition.run_id)
            self._look_now()
            if isinstance(result.error, ConflictError):
                self._retry.append((lease, outcome))
            elif isinstance(result.error, LeaseLostError):
                log.info("discarded an outcome: %s", result.error)
                self._running.pop(_key(lease), None)
            else:
                log.error("cannot record an outcome of run %s: %s", lease.run_id, result.error)
                self._running.pop(_key(lease), None)
        self._begin(claimed)
        self._observe(recorded + [item.started for item in claimed])
        return len(recorded)

    def _missing_code(self, lease: Lease, task: str, why: str, now: float) -> Transition:
        """Give the attempt back for a worker with the code, or fail it past the bound."""
        event, again_at = missing_code(
            self.store.history(lease.run_id), lease, task, why, now=now,
            code_wait=self.options.code_wait,
        )  # fmt: skip
        state = self.cache.state(lease.run_id)
        transition = advance(lease.run_id, state, [event], now, [lease], cache=self.cache)
        if again_at is None:
            return transition
        log.info("run %s: %s given back for another worker: %s", lease.run_id, lease.node, why)
        back = time.monotonic() + again_at - now
        wait = self.options.fallback_poll if self.listening else 5 * self.options.poll
        self._aside.append((back, back + wait))
        again = ready_row(state, lease.node, lease.attempt, lease.item, again_at)
        return dataclasses.replace(transition, enqueue=[*transition.enqueue, again])

    def start_run(
        self,
        spec: WorkflowSpec,
        run_input: Any,
        *,
        origin: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Start a run whose first attempts this worker leases in the same transaction
        (no claim needed to begin); returns its id. Execute it with ``run_until_finished``."""
        free = self.options.concurrency - len(self._running)
        committed = record_run(
            self.store, spec, run_input, clock=self.clock, origin=origin, run_id=run_id,
            cache=self.cache, lease=lambda first: self._leasing(first, free),
        )  # fmt: skip
        self._started(committed)
        return committed.transition.run_id

    def _leasing(self, transition: Transition, free: int) -> Transition:
        # while work may be waiting on the queue (a map's next items), the transition
        # takes it too, sparing a claim transaction (and, with FULL, a disk flush)
        waiting = self._look_at == _NOW
        take = max(0, free if waiting else min(free, len(transition.enqueue)))
        if not take:
            return transition
        return dataclasses.replace(
            transition, lease_to=self.owner, lease_limit=take, lease_for=self.options.lease_for,
            lease_queues=self.options.queues,
        )  # fmt: skip

    def _look_now(self) -> None:
        """Work may be waiting on the queue: the next ``_claim`` looks."""
        self._look_at = _NOW

    def _note_unleased(self, committed: Committed) -> None:
        transition = committed.transition
        if len(committed.claimed) < len(transition.enqueue):
            self._look_now()  # it queued more than it leased
        if any(timer.due_at <= transition.at for timer in transition.timers):
            self._timers_next = float("-inf")  # a run told another something: fire it now

    def _started(self, committed: Committed) -> None:
        self._note_unleased(committed)
        self._begin(committed.claimed)
        self._observe(committed.events + [item.started for item in committed.claimed])

    def _lease_on_commit(
        self, batch: list[tuple[Transition, Lease, Outcome]]
    ) -> list[tuple[Transition, Lease, Outcome]]:
        """Let each transition lease what it makes ready to this worker, up to the slots
        that will be free once the batch is recorded."""
        free = self.options.concurrency - len(self._running) + len(batch)
        # only a run's last transition in the batch may lease: the NodeStarted events it
        # appends come after its own events, where a later transition expects its own
        last = {transition.run_id: index for index, (transition, _, _) in enumerate(batch)}
        leasing: list[tuple[Transition, Lease, Outcome]] = []
        for index, (transition, lease, outcome) in enumerate(batch):
            if last[transition.run_id] == index:
                transition = self._leasing(transition, free)
                free -= transition.lease_limit  # 0 when it leases nothing
            leasing.append((transition, lease, outcome))
        return leasing

    def _standing_aside(self, looked: float) -> bool:
        """Whether attempts given back for want of code are up for others just now."""
        self._aside = [(start, end) for start, end in self._aside if end > looked]
        ends = [end for start, end in self._aside if start <= looked]
        if ends:
            self._look_at = max(self._look_at, max(ends))
        return bool(ends)

    def _begin(self, claimed: list[Claimed]) -> None:
        for item in claimed:
            self.cache.observe(item.started)
        for item in claimed:
            self._start(item.lease)

    def _claim(self, run_ids: list[str] | None) -> int:
        """Claim ready attempts, but only look when work may be waiting: this worker's
        own commits lease what they make ready, so after the queue was found drained it
        is looked at again when a commit of ours left work unleased, after a reclaim, or
        a ``poll`` later for work queued by other processes."""
        free = self.options.concurrency - len(self._running)
        looked = time.monotonic()  # pacing, not a durable decision: never the run clock
        if free <= 0 or looked < self._look_at or self._standing_aside(looked):
            return 0
        now = self.clock.now()
        claimed = self.store.claim(
            self.owner, free, now, self.options.lease_for, run_ids=run_ids,
            queues=self.options.queues,
        )  # fmt: skip
        if len(claimed) < free:
            pause = self.options.fallback_poll if self.listening else self.options.poll
            self._look_at = looked + pause
            if isinstance(claimed, Claims) and claimed.retry_at is not None:
                wait = max(0.0, claimed.retry_at - now)  # a rate limit frees a place then
                self._look_at = min(self._look_at, looked + wait)
        self._begin(claimed)
        self._observe([item.started for item in claimed])
        return len(claimed)

    def _start(self, lease: Lease) -> None:
        state = self.cache.state(lease.run_id)
        plan = state.plan.nodes[lease.node]
        node = state.nodes[lease.node]
        args = node.args if lease.item is None else node.item_args.get(lease.item)
        ctx = make_context(
            lease.run_id, state.plan.spec.name, lease.node, lease.attempt, lease.item
        )
        invocation = Invocation(
            self.catalog, plan.task, dict(args or {}), ctx, plan.retry, plan.isolation
        )
        self._running[_key(lease)] = lease
        refused = self.catalog.refusal(plan.task, plan.retry)
        if refused is not None:  # not to run here: recorded (or given back) next turn
            self._done(lease, refused)
            return
        self.executor.submit(lease, invocation, plan.timeout, self._done, self._came_late)

    def _maintain(self, run_ids: list[str] | None) -> None:
        now = self.clock.now()
        if self._presence is not None:
            self._presence.beat(now)
        if self._running and now - self._renewed_at >= self.options.lease_for / 3:
            self.store.renew(self.owner, now, self.options.lease_for)
            self._renewed_at = now
        if now - self._reclaimed_at >= self.options.reclaim_every:
            self._reclaimed_at = now
            self.reclaim(now)
        if now >= self._timers_next:
            self.fire_timers(now, run_ids)
            self._timers_next = now + self.options.timers_every
            if self.listening:  # sleep until the next timer; a new one is notified
                upcoming = self.store.next_timer_at()
                self._timers_next = now + self.options.fallback_poll
                if upcoming is not None:  # one left due is another run's: not in a hurry
                    soon = upcoming if upcoming > now else now + self.options.timers_every
                    self._timers_next = min(self._timers_next, soon)
        if not self._late.empty():
            self._record_late(now)
        every = self.options.fallback_poll if self.listening else self.options.notify_every
        if now - self._notified_at >= every:
            self._notified_at = now
            self._notify(now)
        if self._delivering:
            self._note_delivered(now)

    # --- notifications --------------------------------------------------------------------------

    def _notify(self, now: float) -> None:
        """Deliver what the outbox holds, a few at a time, on threads of their own."""
        free = 4 - self._delivering
        if free <= 0:
            return
        items = self.store.take_notifications(self.owner, now, free, self.options.lease_for)
        if not items:
            return
        if self._notifier_pool is None:
            self._notifier_pool = ThreadPoolExecutor(4, thread_name_prefix="keel-notify")
        for item in items:
            self._delivering += 1
            self._notifier_pool.submit(self._deliver, item)

    def _deliver(self, item: OutboxItem) -> None:
        self._delivered.put((item, deliver_item(item)))

    def _note_delivered(self, now: float) -> None:
        while not self._delivered.empty():
            item, error = self._delivered.get_nowait()
            self._delivering -= 1
            if error is None:
                self.store.finish_notification(item.id, now)
                continue
            log.warning("notifying about run %s failed: %s", item.run_id, error)
            retry_at = redelivery_at(item, now)
            self.store.finish_notification(item.id, now, error=error, retry_at=retry_at)

    def flush_notifications(self, timeout: float) -> None:
        """Deliver what is due now before stopping (``keel run`` tells of its own failure
        before it exits); what is left stays in the outbox for the next worker."""
        until = time.monotonic() + timeout
        self._notify(self.clock.now())
        while self._delivering and time.monotonic() < until:
            threading.Event().wait(0.01)
            self._note_delivered(self.clock.now())

    # --- timers and late results --------------------------------------------------------------

    def fire_timers(self, now: float | None = None, run_ids: list[str] | None = None) -> int:
        """Hand due timers to their runs (a deadline that passed); how many fired.

        Every worker may find the same timer due: the run's sequence number lets one
        transition through, and the others find the timer gone when they look again."""
        now = self.clock.now() if now is None else now
        fired = 0
        wanted = set(run_ids) if run_ids is not None else None
        for timer in self.store.due_timers(now, 100):
            if wanted is not None and timer.run_id not in wanted:
                continue
            fired += self._fire(timer, now)
        return fired

    def _fire(self, timer: Timer, now: float) -> int:
        try:
            state = self.cache.state(timer.run_id)
        except RunNotFoundError:
            return 0
        causes = timer_causes(state, timer)
        transition = advance(timer.run_id, state, causes, now, cache=self.cache)
        cleared = [*transition.clear_timers, timer.key]
        return self._commit_aside(dataclasses.replace(transition, clear_timers=cleared))

    def _record_late(self, now: float) -> None:
        while not self._late.empty():
            lease, outcome = self._late.get_nowait()
            try:
                state = self.cache.state(lease.run_id)
            except RunNotFoundError:
                continue
            error = outcome.error
            late = LateResultDiscarded(
                node=lease.node, attempt=lease.attempt, item=lease.item,
                outcome="failed" if error else "succeeded",
                error=f"{error.type}: {error.message}" if error else None,
            )  # fmt: skip
            log.warning(
                "run %s: %s attempt %d returned after its timeout; its result is discarded",
                lease.run_id, lease.node, lease.attempt,
            )  # fmt: skip
            if not self._commit_aside(advance(lease.run_id, state, [late], now, cache=self.cache)):
                self._late.put((lease, outcome))  # the run moved meanwhile: next turn
                return

    def _commit_aside(self, transition: Transition) -> int:
        """Commit a transition that no lease of ours is waiting on; 1 if it went in."""
        (result,) = self.store.commit([transition])
        if result.error is not None:
            self.cache.drop(transition.run_id)
            if not isinstance(result.error, ConflictError):
                log.error("run %s: %s", transition.run_id, result.error)
            return 0
        self._note_unleased(result)
        self.cache.settle(result)
        self._observe(result.events)
        return 1

    def reclaim(self, now: float | None = None) -> list[StoredEvent]:
        """Requeue attempts held by dead processes on this host or with expired leases."""
        now = self.clock.now() if now is None else now
        dead = [owner for owner in self.store.lease_owners() if known_dead(owner)]
        events = self.store.reclaim(now, dead_owners=dead)
        if events:
            self._look_now()
        for stored in events:
            self.cache.observe(stored)
        self._observe(events)
        return events

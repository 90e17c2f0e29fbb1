"""Why a run is not progressing: for each node that has not ended, the reason and its
data (``keel why``, ``GET /runs/{id}/why``, the reason lines of ``keel show``).

Worked out in three steps, so the rules are one pure function tested without timing:

- ``replay`` folds the history into the run's state, with the times the state does not
  keep (when each attempt was queued and started, when a wait opened, who paused it);
- ``gather`` reads the few facts only the store has, once: the run's attempts on the
  ready queue (with their circuit, limit keys, lease), the workers it lists, and, only
  when an attempt needs them, the circuits, the holders of its concurrency keys, the
  starts in its rate windows, its child runs;
- ``explain`` turns state, times and facts at ``now`` into a ``RunWhy``.

A queued attempt is held back by the first of: the run's pause, what put it on the
queue for later (a retry's backoff; workers that gave it back for want of its code, said
as such until one with the code takes it; else just "available at"), its circuit, its
concurrency key, its rate key, the lack of a live worker for its queue;
those that hold too are listed after it (``also``), as they would hold it next. The
checks are the claim's own (``keel.store.limits``, the ``free`` queries), read rather
than taken, so what ``keel why`` says is what the next claim will find.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from keel.engine.events import (
    NodeAwaiting,
    NodeReclaimed,
    NodeScheduled,
    NodeStarted,
    RunPaused,
    RunUnpaused,
)
from keel.engine.plan import Plan
from keel.engine.reclaims import lacked_code
from keel.engine.state import ENDED, NodeState, NodeStatus, RunState, RunStatus, apply, is_finished
from keel.errors import RunNotFoundError
from keel.runtime.views.activity import run_activity
from keel.runtime.views.why_reasons import (
    AvailableLater,
    CircuitOpen,
    ConcurrencyFull,
    GaveBack,
    Holder,
    LeaseHolderGone,
    MapParallelFull,
    NoCode,
    NodeWhy,
    NoLiveWorker,
    Paused,
    Queued,
    RateLimited,
    Reason,
    RetryBackoff,
    RunFailing,
    Running,
    RunParallelFull,
    RunWhy,
    Stalled,
    WaitsForApproval,
    WaitsForChildRun,
    WaitsForParents,
    WaitsForSignal,
    WaitsForTimer,
)
from keel.spec.model import ApprovalNode, SignalNode, SubworkflowNode, TimerNode
from keel.store.limits import rate_free_at
from keel.store.presence import LIVE_WITHIN, WorkerRecord
from keel.store.protocol import Store
from keel.store.records import CircuitState, Lease, QueuedAttempt, RunRecord, StoredEvent

#: the most attempts of one run read from the ready queue (a big map has one per item)
READY_LIMIT = 1000

Place = tuple[str, int | None]
#: one attempt: node, item, attempt number
Attempt = tuple[str, int | None, int]
#: what put an attempt on the queue last: its scheduling (a retry: with a backoff), a
#: worker giving it back for want of its code, or a reclaim (its worker died or stopped)
Cause = Literal["scheduled", "retry", "no_code", "reclaimed"]


@dataclass(slots=True)
class Timeline:
    """What the history says that the state does not keep."""

    #: when each attempt (node, item) went on the queue last (not when it is due: a
    #: retry's backoff, a give-back's delay, are the queue row's ``available_at``)
    queued_at: dict[Place, float] = field(default_factory=dict)
    #: what put it there
    queued_by: dict[Place, Cause] = field(default_factory=dict)
    #: each attempt's give-backs for want of its code, in order: when, by which worker
    gave_back: dict[Attempt, list[tuple[float, str]]] = field(default_factory=dict)
    #: when each attempt last started
    started_at: dict[Place, float] = field(default_factory=dict)
    #: when each waiting node's wait opened
    opened_at: dict[str, float] = field(default_factory=dict)
    #: the pause in force: by, when, why
    paused: tuple[str, float, str] | None = None


def replay(plan: Plan, history: Sequence[StoredEvent], run_id: str) -> tuple[RunState, Timeline]:
    """The run's state from its history, and its ``Timeline``."""
    state = RunState.new(plan, run_id)
    times = Timeline()
    for stored in history:
        event = stored.event
        apply(state, event, stored.seq)
        if isinstance(event, NodeScheduled):
            place = (event.node, event.item)
            times.queued_at[place] = stored.at
            times.queued_by[place] = "scheduled" if event.not_before is None else "retry"
        elif isinstance(event, NodeReclaimed):
            place = (event.node, event.item)
            times.queued_at[place] = stored.at
            times.queued_by[place] = "no_code" if lacked_code(event) else "reclaimed"
            if lacked_code(event):
                given = times.gave_back.setdefault((*place, event.attempt), [])
                given.append((stored.at, event.owner))
        elif isinstance(event, NodeStarted):
            times.started_at[(event.node, event.item)] = stored.at
        elif isinstance(event, NodeAwaiting):
            times.opened_at[event.node] = stored.at
        elif isinstance(event, RunPaused):
            times.paused = (event.by, stored.at, event.reason)
        elif isinstance(event, RunUnpaused):
            times.paused = None
    return state, times


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """What ``explain`` needs from the store besides the history."""

    #: the run's attempts on the ready queue, leased or not
    ready: list[QueuedAttempt] = field(default_factory=list)
    #: more attempts are on the queue than were read
    truncated: bool = False
    #: every worker the store lists, live or not (``seen_at`` tells)
    workers: list[WorkerRecord] = field(default_factory=list)
    circuits: dict[str, CircuitState] = field(default_factory=dict)
    #: per concurrency key of a queued attempt: the attempts holding it
    holders: dict[str, list[Lease]] = field(default_factory=dict)
    #: per rate key of a queued attempt: the starts in its (longest) window
    rate_starts: dict[str, list[float]] = field(default_factory=dict)
    #: the child runs waited for, by id
    children: dict[str, RunRecord] = field(default_factory=dict)
    #: this run and the runs above it (a worker of given runs executes their children)
    lineage: frozenset[str] = frozenset()


def gather(store: Store, record: RunRecord, state: RunState, now: float) -> StoreFacts:
    """The store's facts about the run at ``now``, each read once and only if needed."""
    if is_finished(state.status):
        return StoreFacts()
    ready = store.ready_attempts(record.id, READY_LIMIT)
    queued = [attempt.ready for attempt in ready if attempt.owner is None]
    windows: dict[str, float] = {}
    for row in queued:
        if row.rate_key is not None:
            windows[row.rate_key] = max(windows.get(row.rate_key, 0.0), row.rate_per)
    keys = sorted({row.limit_key for row in queued if row.limit_key is not None})
    workers = store.live_workers(seen_since=0.0) if ready else []
    children: dict[str, RunRecord] = {}
    for node_id, node in state.nodes.items():
        child = (node.details or {}).get("run_id")
        waits = state.plan.nodes[node_id].wait
        if node.status is NodeStatus.AWAITING and isinstance(waits, SubworkflowNode):
            with contextlib.suppress(RunNotFoundError):  # pruned: said as not in the store
                children[str(child)] = store.get_run(str(child))
    needs_circuits = any(row.circuit is not None for row in queued)
    return StoreFacts(
        ready=ready, truncated=len(ready) >= READY_LIMIT, workers=workers,
        circuits={c.name: c for c in store.circuits()} if needs_circuits else {},
        holders={key: store.limit_holders(key) for key in keys},
        rate_starts={key: store.rate_starts(key, now - per) for key, per in windows.items()},
        children=children,
        lineage=_lineage(store, record) if any(w.runs for w in workers) else frozenset(),
    )  # fmt: skip


def _lineage(store: Store, record: RunRecord) -> frozenset[str]:
    found = {record.id}
    parent = record.parent_run
    while parent is not None and parent not in found:
        found.add(parent)
        try:
            parent = store.get_run(parent).parent_run
        except RunNotFoundError:
            break
    return frozenset(found)


def run_why(store: Store, record: RunRecord, plan: Plan, now: float) -> RunWhy:
    """Why the run ``record`` (whose plan is ``plan``) has not ended, at ``now``."""
    state, times = replay(plan, store.history(record.id), record.id)
    # what it is doing, as ``keel runs`` and ``keel show`` say it (the history's status)
    by, since, why = times.paused or ("", 0.0, "")
    paused = None if times.paused is None else Paused(by=by, since=since, reason=why)
    doing = run_activity(store, dataclasses.replace(record, status=state.status.value), now,
                         state=state, paused=paused)  # fmt: skip
    return explain(record, state, times, gather(store, record, state, now), now,
                   activity=None if doing is None else doing.text)  # fmt: skip


def explain(
    record: RunRecord, state: RunState, times: Timeline, facts: StoreFacts, now: float,
    *, activity: str | None = None,
) -> RunWhy:  # fmt: skip
    """The reason of every node not ended (pure: state, times and facts at ``now``);
    ``activity``: what the run is doing in words (``keel.runtime.views.activity``)."""
    paused = None
    if state.status is RunStatus.PAUSED:
        by, since, reason = times.paused or (None, None, "")
        paused = Paused(by=by, since=since, reason=reason)
    nodes: list[NodeWhy] = []
    if not is_finished(state.status):
        explainer = _Explainer(state, times, facts, now, paused)
        plan = state.plan
        for node_id in (*plan.graph_nodes, *plan.side_steps):
            nodes.extend(explainer.node(node_id))
    return RunWhy(run_id=record.id, workflow=record.workflow, status=state.status.value,
                  activity=activity, at=now, paused=paused, nodes=nodes, late=state.late,
                  truncated=facts.truncated)  # fmt: skip


class _Explainer:
    """The rules, over one run's state and facts."""

    def __init__(
        self, state: RunState, times: Timeline, facts: StoreFacts, now: float,
        paused: Paused | None,
    ) -> None:  # fmt: skip
        self.state, self.plan, self.times, self.facts = state, state.plan, times, facts
        self.now, self.paused = now, paused
        self.rows: dict[Place, QueuedAttempt] = {}
        for attempt in facts.ready:
            self.rows[(attempt.ready.node, attempt.ready.item)] = attempt
        self.owners = {worker.owner: worker for worker in facts.workers}
        self.live = [w for w in facts.workers if w.seen_at >= now - LIVE_WITHIN]

    def node(self, node_id: str) -> list[NodeWhy]:
        node = self.state.nodes[node_id]
        status = node.status
        if status in ENDED or (status is NodeStatus.WAITING and node_id in self.plan.side_steps):
            return []  # ended, or a failure-path step that did not come
        if status is NodeStatus.WAITING:
            return [NodeWhy(node=node_id, status=status.value, reason=self._waiting(node_id))]
        if status is NodeStatus.AWAITING:
            return [NodeWhy(node=node_id, status=status.value, reason=self._awaiting(node_id))]
        if node.item_count is not None:
            return self._map(node_id, node)
        row = self.rows.get((node_id, None))
        if row is not None:
            return [self._attempt(node_id, None, status.value, row)]
        if node.failed_attempt:  # its retry waits for a slot, or for the run's pause
            return [NodeWhy(node=node_id, status=status.value, reason=self._unscheduled())]
        if self.facts.truncated:
            return []
        stalled = Stalled(detail="its attempt is not on the ready queue")
        return [NodeWhy(node=node_id, status=status.value, reason=stalled)]

    # --- nodes that have not started ------------------------------------------------------

    def _waiting(self, node_id: str) -> Reason:
        state = self.state
        if state.status is RunStatus.FAILING:
            reason, failed = state.failure or ("the run is failing", None)
            return RunFailing(reason=reason, node=failed)
        pending = [parent for parent in self.plan.nodes[node_id].parents
                   if state.nodes[parent].status not in ENDED]  # fmt: skip
        return WaitsForParents(parents=pending) if pending else self._unscheduled()

    def _unscheduled(self) -> Reason:
        """Why work that may start now (a node whose parents ended, a retry, a map's
        next items) has no attempt on the queue."""
        if self.paused is not None:
            return self.paused
        if not self.state.has_room():
            assert self.plan.max_parallel is not None
            return RunParallelFull(limit=self.plan.max_parallel, out=self.state.out)
        return Stalled(detail="it may start, but nothing scheduled it")

    def _awaiting(self, node_id: str) -> Reason:
        state, node = self.state, self.state.nodes[node_id]
        if self.paused is not None and any(pending == node_id for pending, _ in state.to_resolve):
            return self.paused  # what ends the wait came; the run acts on it when unpaused
        wait, details = self.plan.nodes[node_id].wait, node.details or {}
        since = self.times.opened_at.get(node_id)
        if isinstance(wait, ApprovalNode):
            return WaitsForApproval(
                title=details.get("title"), assignees=list(details.get("assignees") or []),
                role=details.get("role"), since=since, due=node.until,
            )  # fmt: skip
        if isinstance(wait, TimerNode):
            return WaitsForTimer(until=node.until)
        if isinstance(wait, SignalNode):
            return WaitsForSignal(name=wait.signal, since=since, timeout_at=node.until)
        child = str(details.get("run_id", ""))
        found = self.facts.children.get(child)
        return WaitsForChildRun(run_id=child, workflow=details.get("workflow"),
                                status=None if found is None else found.status)  # fmt: skip

    def _map(self, node_id: str, node: NodeState) -> list[NodeWhy]:
        """A map's items out (each its own attempt), those whose retry waits, and the
        items not scheduled yet."""
        found: list[NodeWhy] = []
        for (row_node, item), row in self.rows.items():
            if row_node == node_id and item is not None:
                status = "running" if node.items_open.get(item) else "scheduled"
                found.append(self._attempt(node_id, item, status, row))
        for item in sorted(node.items_failed):
            if (node_id, item) not in self.rows:
                found.append(NodeWhy(node=node_id, item=item, status="scheduled",
                                     reason=self._unscheduled()))  # fmt: skip
        assert node.item_count is not None
        left = node.item_count - node.next_item
        if left > 0:
            limit = self.plan.nodes[node_id].max_parallel
            reason: Reason
            if limit is not None and node.items_out >= limit:
                reason = MapParallelFull(limit=limit, out=node.items_out, left=left)
            else:
                reason = self._unscheduled()
            found.append(NodeWhy(node=node_id, status=node.status.value, reason=reason))
        return found

    # --- attempts on the ready queue --------------------------------------------------------

    def _attempt(self, node_id: str, item: int | None, status: str, row: QueuedAttempt) -> NodeWhy:
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
        if expired or unseen:
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
        circuit = self.facts.circuits.get(ready.circuit or "")
        if circuit is not None:
            is_open = circuit.open_until is not None and circuit.open_until > now
            probing = circuit.probe_until is not None and circuit.probe_until > now
            if is_open or probing:
                yield CircuitOpen(circuit=circuit.name, failures=circuit.failures,
                                  until=circuit.open_until if is_open else None,
                                  probe_until=circuit.probe_until if probing else None)  # fmt: skip
        if ready.limit_key is not None:
            holders = self.facts.holders.get(ready.limit_key, [])
            if len(holders) >= ready.limit_max:
                yield ConcurrencyFull(key=ready.limit_key, limit=ready.limit_max, holders=[
                    Holder(run_id=h.run_id, node=h.node, item=h.item, owner=h.owner)
                    for h in holders])  # fmt: skip
        if ready.rate_key is not None:
            since = now - ready.rate_per
            starts = [at for at in self.facts.rate_starts.get(ready.rate_key, []) if at > since]
            free_at = rate_free_at(starts, ready.rate_max, ready.rate_per)
            if free_at is not None:
                yield RateLimited(key=ready.rate_key, limit=ready.rate_max, per=ready.rate_per,
                                  until=free_at)  # fmt: skip
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

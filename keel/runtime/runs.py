"""Run states in memory, rebuilt from the store's history, and the one function that turns
something that happened into a ``Transition``: apply it, decide what follows, and list
the attempts that become ready. Every path that changes a run (start, a worker's
outcome, cancel) goes through ``advance``, so there is one way a run moves forward.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from keel.engine.decide import decide
from keel.engine.events import (
    ApprovalDecided,
    Event,
    NodeAwaiting,
    NodeScheduled,
    NodeSetByHand,
    NodeWithdrawn,
    RunFailed,
    RunRetried,
    RunStarted,
)
from keel.engine.plan import NodePlan, Plan, compile_plan
from keel.engine.state import RunState, RunStatus, apply, is_finished
from keel.errors import ExpressionError, KeelError
from keel.runtime.notifications.outbox import notifications_of
from keel.runtime.triggers.live import COMPLETION, LiveTriggers
from keel.runtime.waiting import WaitWrites, family_timers, start_children, wait_writes
from keel.spec.expressions import evaluate
from keel.spec.model import WorkflowSpec
from keel.store.chain import canonical_json
from keel.store.protocol import Store
from keel.store.records import Lease, Notification, Ready, StoredEvent, Timer
from keel.store.tombstones import refuse_pruned
from keel.store.writes import (
    Committed,
    Enqueue,
    Finish,
    Hold,
    Notify,
    SetLate,
    SetStatus,
    SetTimer,
    Transition,
    Withdraw,
    Write,
)

log = logging.getLogger("keel.runs")

#: the key of a run's deadline timer
DEADLINE = "deadline"
#: the key of the timer that marks a run late (at its expected duration)
LATE = "late"

#: how many compiled plans the process keeps beside the caches' own
PLANS_KEPT = 64
_compiled: OrderedDict[str, Plan] = OrderedDict()
_compiled_lock = threading.Lock()


def compiled(spec: WorkflowSpec) -> Plan:
    """The plan of ``spec``, compiled once per process for the last ``PLANS_KEPT``
    versions: a client starting runs one after another (``start_run`` without a cache,
    ``Client.start``) compiles its workflow once, not per run. A plan depends on its
    spec alone (equal versions, equal definitions) and is never changed once compiled."""
    version = spec.version
    with _compiled_lock:  # request threads of a server share it
        plan = _compiled.get(version)
        if plan is not None:
            _compiled.move_to_end(version)
            return plan
    plan = compile_plan(spec)  # outside the lock: two threads may compile it, never wait
    with _compiled_lock:
        _compiled[version] = plan
        if len(_compiled) > PLANS_KEPT:
            _compiled.popitem(last=False)
    return plan


def ready_of(state: RunState, events: Sequence[Event], now: float) -> list[Ready]:
    """Ready-queue rows for the attempts the events schedule."""
    ready: list[Ready] = []
    for event in events:
        if isinstance(event, NodeScheduled):
            at = now if event.not_before is None else event.not_before
            ready.append(ready_row(state, event.node, event.attempt, event.item, at))
    return ready


def ready_row(
    state: RunState, node_id: str, attempt: int, item: int | None, available_at: float
) -> Ready:
    """The ready-queue row of one attempt, with its node's queue, circuit and limits."""
    node = state.plan.nodes[node_id]
    circuit = node.circuit.name if node.circuit is not None else None
    row = Ready(node_id, attempt, item, node.queue, node.priority, available_at, circuit)
    if node.concurrency is not None or node.rate_limit is not None:
        row = _limited(state, node, row)
    return row


def _limited(state: RunState, node: NodePlan, row: Ready) -> Ready:
    """The attempt with its concurrency and rate-limit keys, evaluated now."""
    changes: dict[str, Any] = {}
    if node.concurrency is not None:
        changes["limit_key"] = _key_of(state, node, node.concurrency.key)
        changes["limit_max"] = node.concurrency.limit
    if node.rate_limit is not None:
        changes["rate_key"] = _key_of(state, node, node.rate_limit.key)
        changes["rate_max"] = node.rate_limit.limit
        changes["rate_per"] = node.rate_limit.per
    return dataclasses.replace(row, **changes)


def _key_of(state: RunState, node: NodePlan, source: str) -> str:
    """A limit's key. One that cannot be evaluated (a field missing from this run's
    input) falls back to the expression's text: the attempt still counts against a limit,
    shared with every attempt whose key failed the same way, rather than none."""
    variables = {
        "input": state.input,
        "nodes": {name: {"output": state.nodes[name].output} for name in node.reads},
    }
    try:
        value = evaluate(source, variables)
    except ExpressionError as exc:
        log.warning("run %s: the limit key of %s failed (%s); using %r", state.run_id,
                    node.id, exc, source)  # fmt: skip
        return source
    return value if isinstance(value, str) else canonical_json(value)


def withdrawn_of(events: Sequence[Event]) -> list[tuple[str, int | None]]:
    """Queued attempts the events take back (withdrawn, or their node set by hand)."""
    return [
        (event.node, event.item if isinstance(event, NodeWithdrawn) else None)
        for event in events
        if isinstance(event, NodeWithdrawn | NodeSetByHand)
    ]


def timers_of(run_id: str, plan: Plan, events: Sequence[Event], now: float) -> list[Timer]:
    """Durable wake-ups the events arm: the run's expected duration and its deadline,
    counted from its start (or from a manual retry, which gives the run its time again).
    Both go with the run when it ends (``SetStatus``)."""
    if plan.deadline is None and plan.expected_duration is None:
        return []
    if not any(isinstance(event, RunStarted | RunRetried) for event in events):
        return []
    timers = []
    if plan.expected_duration is not None:
        timers.append(Timer(run_id=run_id, key=LATE, due_at=now + plan.expected_duration))
    if plan.deadline is not None:
        timers.append(Timer(run_id=run_id, key=DEADLINE, due_at=now + plan.deadline))
    return timers


#: events about a task's attempt that asked a person (``ApprovalNeeded``), in a plan
#: without wait nodes: its wait is listed (``keel approvals``) until it is decided, or
#: the node ends otherwise
_ASKED = (NodeAwaiting, ApprovalDecided, NodeWithdrawn, NodeSetByHand)


def _decided(
    run_id: str, state: RunState, causes: Sequence[Event], now: float, cache: RunCache | None
) -> tuple[list[Event], WaitWrites | None]:
    """The causes and every event that follows, with what the waits among them write."""
    for event in causes:
        apply(state, event)
    events = [*causes, *decide(state, now)]
    if not state.plan.has_waits and not any(isinstance(e, _ASKED) for e in events):
        return events, None

    def plan_of(version: str) -> Plan:
        if cache is None:
            raise KeelError(f"run {run_id} starts a child run: pass the run cache to advance")
        return cache.plan(version)

    def child_advance(
        child: str, child_state: Any, started: Sequence[Event], at: float
    ) -> Transition:
        return advance(child, child_state, started, at, cache=cache)

    children, refused = start_children(state, events, now, plan_of, child_advance)
    while refused:  # a child that cannot start fails its node: decide what follows
        for event in refused:
            apply(state, event)
        more = [*refused, *decide(state, now)]
        events += more
        started, refused = start_children(state, more, now, plan_of, child_advance)
        children += started
    writes = wait_writes(run_id, state, events, now)
    writes.children = children
    return events, writes


def advance(
    run_id: str,
    state: RunState,
    causes: Sequence[Event],
    now: float,
    done: Sequence[Lease] = (),
    *,
    cache: RunCache | None = None,
) -> Transition:
    """Apply ``causes`` to the state, decide, and describe it all as one transition.

    The state is changed in place and its ``last_seq`` moved past the new events, as if
    the transition had committed; if the store refuses it, drop the state and reload.
    ``cache`` gives the definitions of child runs the transition starts.
    """
    expected, expected_head = state.last_seq, state.head
    status_before, late_before = state.status, state.late
    events, waits = _decided(run_id, state, causes, now, cache)
    state.last_seq = expected + len(events)
    state.head = None  # known once the transition commits (``RunCache.settle``)
    finished = is_finished(state.status)
    changed = state.status is not status_before or expected == 0
    plan = state.plan
    timed = plan.deadline is not None or plan.expected_duration is not None
    timers = timers_of(run_id, plan, events, now) if timed else []
    if waits is not None:
        timers += waits.timers
    if finished and changed and (state.parent is not None or plan.has_waits):
        timers += family_timers(state, now)
    writes: list[Write] = [Finish(lease) for lease in done]
    writes += [Withdraw(node, item) for node, item in withdrawn_of(events)]
    writes += [Enqueue(ready) for ready in ready_of(state, events, now)]
    writes += [SetTimer(timer) for timer in timers]
    if waits is not None:
        writes += waits.writes()
    if changed and RunStatus.PAUSED in (state.status, status_before):
        writes.append(Hold(state.status is RunStatus.PAUSED))
    if plan.spec.notify:
        writes += [Notify(note) for note in notifications_of(state, events, now)]
    if state.late != late_before:  # late (``RunLate``), or on time again (a retry)
        writes.append(SetLate(state.late))
    if changed:  # no write when the status stays the same
        if finished:
            if cache is not None and cache.live.listened(plan.spec.name):
                writes.append(Notify(ended(state, now)))
            writes.append(SetStatus(state.status.value, state.output, state.reason,
                                    *failed_by(state, events)))  # fmt: skip
        else:
            writes.append(SetStatus(state.status.value))
    return Transition(run_id, expected, now, events, writes, expected_head=expected_head)


def failed_by(state: RunState, events: Sequence[Event]) -> tuple[str | None, str | None]:
    """Why a run that ``events`` end failed: the node its ``RunFailed`` names and the type
    of that node's last error (the state keeps it), as ``keel failures`` finds them in
    the history; (None, None) for a run that did not fail, or failed as a whole."""
    node = next((e.node for e in reversed(events) if isinstance(e, RunFailed)), None)
    error = None if node is None else state.nodes[node].error
    return node, None if error is None else error.type


def ended(state: RunState, now: float) -> Notification:
    """The outbox item of a run's end that completion triggers fire from (its output
    and input are read back from the run when it is fired)."""
    payload = {"run_id": state.run_id, "workflow": state.plan.spec.name,
               "status": state.status.value, "at": now}  # fmt: skip
    return Notification(dict(COMPLETION), payload)


class RunCache:
    """Plans by spec version and states by run, loaded from the store on demand.

    Bounded: the least recently used states are dropped beyond ``capacity`` (they are
    rebuilt from their history when needed again).
    """

    def __init__(self, store: Store, capacity: int = 1_000) -> None:
        self.store = store
        self.capacity = capacity
        self._plans: dict[str, Plan] = {}
        self._states: OrderedDict[str, RunState] = OrderedDict()
        #: the completion and webhook triggers live now (read when a run ends, and on
        #: every webhook delivery)
        self.live = LiveTriggers(store, lambda version: self.plan(version).spec)

    def plan(self, version: str) -> Plan:
        plan = self._plans.get(version) or _compiled.get(version)
        return plan if plan is not None else self.plan_of(self.store.load_spec(version))

    def plan_of(self, spec: WorkflowSpec) -> Plan:
        """The plan of a definition in hand (no need to read it back from the store)."""
        plan = self._plans.get(spec.version)
        if plan is None:
            plan = self._plans[spec.version] = compiled(spec)
        return plan

    def state(self, run_id: str) -> RunState:
        state = self._states.get(run_id)
        if state is None:
            state = self._load(run_id)
            self._states[run_id] = state
            if len(self._states) > self.capacity:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(run_id)
        return state

    def cached(self, run_id: str) -> RunState | None:
        """The run's state if it is cached, never loaded for the asking (nor made the
        most recently used)."""
        return self._states.get(run_id)

    def _load(self, run_id: str) -> RunState:
        """The run's state rebuilt from its history, read once: its first event
        (``RunStarted``) names the version it follows, so a run started by another
        process costs one read, not its record and then its history. An id that is not
        a whole run's (a prefix, a missing run) goes through its record as before."""
        history = self.store.history(run_id)
        first = history[0].event if history else None
        if isinstance(first, RunStarted) and history[0].run_id == run_id:
            state = RunState.new(self.plan(first.spec_version), run_id)
        else:
            record = self.store.get_run(run_id)
            refuse_pruned(record)  # an empty state would be a run not started
            state = RunState.new(self.plan(record.spec_version), record.id)
            history = self.store.history(record.id)
        for stored in history:
            apply(state, stored.event, stored.seq)
            state.head = stored.hash
        if history:
            state.started_at = history[0].at
        return state

    def plan_of_run(self, run_id: str) -> Plan:
        """The plan a run follows, without replaying its history when it is not cached."""
        state = self._states.get(run_id)
        return (
            state.plan if state is not None else self.plan(self.store.get_run(run_id).spec_version)
        )

    def put(self, run_id: str, state: RunState) -> None:
        self._states[run_id] = state

    def drop(self, run_id: str) -> None:
        self._states.pop(run_id, None)

    def observe(self, stored: StoredEvent) -> None:
        """Fold in an event recorded outside ``advance`` (a claim, a reclaim)."""
        state = self._states.get(stored.run_id)
        if state is None or stored.seq <= state.last_seq:  # absent, or already loaded
            return
        if state.last_seq == stored.seq - 1:
            apply(state, stored.event, stored.seq)
            state.head = stored.hash
        else:  # an event of another process came in between: reload when next needed
            self.drop(stored.run_id)

    def settle(self, committed: Committed) -> None:
        """Learn the head a committed transition left its run at (``advance`` cannot
        know it), so the run's next transition is checked against exactly it."""
        if committed.error is not None:
            return
        t = committed.transition
        state = self._states.get(t.run_id)
        if state is None:
            return
        if committed.events:
            last = committed.events[-1]
            if state.last_seq == last.seq:  # not already ahead again, in the same batch
                state.head = last.hash
        elif state.last_seq == t.expected_seq:
            state.head = t.expected_head

"""Run states in memory, rebuilt from the store's history, and the one function that turns
something that happened into a ``Transition``: apply it, decide what follows, and list
the attempts that become ready. Every path that changes a run (start, a worker's
outcome, cancel) goes through ``advance``, so there is one way a run moves forward.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from keel.engine.decide import decide
from keel.engine.events import (
    Event,
    NodeScheduled,
    NodeSetByHand,
    NodeWithdrawn,
    RunRetried,
    RunStarted,
)
from keel.engine.plan import Plan, compile_plan
from keel.engine.state import RunState, apply
from keel.runtime.notifications import notifications_of
from keel.spec.model import WorkflowSpec
from keel.store.protocol import Store
from keel.store.records import Lease, Ready, StoredEvent, Timer, Transition

#: the key of a run's deadline timer
DEADLINE = "deadline"


def ready_of(plan: Plan, events: Sequence[Event], now: float) -> list[Ready]:
    """Ready-queue rows for the attempts the events schedule."""
    ready: list[Ready] = []
    for event in events:
        if isinstance(event, NodeScheduled):
            node = plan.nodes[event.node]
            available_at = now if event.not_before is None else event.not_before
            circuit = node.circuit.name if node.circuit is not None else None
            ready.append(
                Ready(event.node, event.attempt, event.item, node.queue, node.priority,
                      available_at, circuit)
            )  # fmt: skip
    return ready


def withdrawn_of(events: Sequence[Event]) -> list[tuple[str, int | None]]:
    """Queued attempts the events take back (withdrawn, or their node set by hand)."""
    return [
        (event.node, event.item if isinstance(event, NodeWithdrawn) else None)
        for event in events
        if isinstance(event, NodeWithdrawn | NodeSetByHand)
    ]


def timers_of(run_id: str, plan: Plan, events: Sequence[Event], now: float) -> list[Timer]:
    """Durable wake-ups the events arm: the run's deadline, counted from its start (or
    from a manual retry, which gives the run its time again)."""
    if plan.deadline is None:
        return []
    if any(isinstance(event, RunStarted | RunRetried) for event in events):
        return [Timer(run_id=run_id, key=DEADLINE, due_at=now + plan.deadline)]
    return []


def advance(
    run_id: str,
    state: RunState,
    causes: Sequence[Event],
    now: float,
    done: Sequence[Lease] = (),
) -> Transition:
    """Apply ``causes`` to the state, decide, and describe it all as one transition.

    The state is changed in place and its ``last_seq`` moved past the new events, as if
    the transition had committed; if the store refuses it, drop the state and reload.
    """
    expected = state.last_seq
    status_before = state.status
    for event in causes:
        apply(state, event)
    events = [*causes, *decide(state, now)]
    state.last_seq = expected + len(events)
    finished = state.finished
    changed = state.status is not status_before or expected == 0
    plan = state.plan
    return Transition(
        run_id=run_id,
        expected_seq=expected,
        at=now,
        events=events,
        enqueue=ready_of(plan, events, now),
        done=done,
        timers=timers_of(run_id, plan, events, now) if plan.deadline is not None else (),
        withdraw=withdrawn_of(events),
        notify=notifications_of(state, events, now) if plan.spec.notify else (),
        status=state.status.value if changed else None,  # no write when it stays the same
        output=state.output if finished else None,
        reason=state.reason if finished else None,
    )


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

    def plan(self, version: str) -> Plan:
        plan = self._plans.get(version)
        return plan if plan is not None else self.plan_of(self.store.load_spec(version))

    def plan_of(self, spec: WorkflowSpec) -> Plan:
        """The plan of a definition in hand (no need to read it back from the store)."""
        plan = self._plans.get(spec.version)
        if plan is None:
            plan = self._plans[spec.version] = compile_plan(spec)
        return plan

    def state(self, run_id: str) -> RunState:
        state = self._states.get(run_id)
        if state is None:
            record = self.store.get_run(run_id)
            state = RunState.new(self.plan(record.spec_version), record.id)
            for stored in self.store.history(record.id):
                apply(state, stored.event, stored.seq)
            self._states[run_id] = state
            if len(self._states) > self.capacity:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(run_id)
        return state

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
        else:  # an event of another process came in between: reload when next needed
            self.drop(stored.run_id)

"""The transitions the worker commits, and what it reads back from one that committed.

Every place the worker builds a ``Transition`` or adds to one is here: recording an
attempt's outcome (counted against its circuit breaker), giving an attempt back for want
of code, firing a due timer, discarding a late result, leasing what a transition makes
ready to this worker (lease-on-commit), keeping what the attempt's task logged with
its outcome; and the two things the worker learns from a
commit (it queued work it did not lease; it set a timer due at once). The loop and the
pumps call these and never touch a transition's fields themselves, so a change to
``Transition`` is an edit of this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from keel.engine.events import LateResultDiscarded, NodeAwaiting, NodeFailed, NodeSucceeded
from keel.engine.plan import NodePlan
from keel.engine.state import RunState
from keel.runtime.execution.invoke import Outcome
from keel.runtime.runs import RunCache, advance, ready_row
from keel.runtime.worker.missing_code import missing_code
from keel.runtime.worker.timers import timer_causes
from keel.store.records import CircuitOutcome, Lease, StoredEvent, Timer
from keel.store.task_logs import AttemptLines
from keel.store.writes import (
    ClearTimer,
    Committed,
    CountCircuit,
    Enqueue,
    KeepLogs,
    LeaseRequest,
    Notify,
    SetTimer,
    Transition,
)


def recorded(
    state: RunState, lease: Lease, outcome: Outcome, now: float, cache: RunCache
) -> Transition:
    """The transition that records an attempt's outcome (the lease is done with it)."""
    event: NodeSucceeded | NodeFailed | NodeAwaiting
    if outcome.error is None:
        event = NodeSucceeded(
            node=lease.node, attempt=lease.attempt, output=outcome.output, item=lease.item
        )
    elif outcome.asks is not None and lease.item is None:  # waits for a person's answer
        event = NodeAwaiting(
            node=lease.node, attempt=lease.attempt, waits_for="approval", details=outcome.asks
        )
    else:
        event = NodeFailed(
            node=lease.node, attempt=lease.attempt, error=outcome.error, item=lease.item
        )
    transition = advance(lease.run_id, state, [event], now, [lease], cache=cache)
    plan = state.plan.nodes[lease.node]
    if plan.circuit is not None:
        transition = _with_circuit(transition, plan, outcome)
    return transition


def keeping(transition: Transition, lines: AttemptLines | None) -> Transition:
    """The transition that records an outcome, with the lines its task logged (if any):
    they commit with it, or neither does."""
    return transition if lines is None else transition.adding(KeepLogs(lines))


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
    return transition.adding(CountCircuit(counted))


def given_back(
    history: Sequence[StoredEvent],
    state: RunState,
    lease: Lease,
    task: str,
    why: str,
    *,
    now: float,
    code_wait: float,
    cache: RunCache,
) -> tuple[Transition, float | None]:
    """For an attempt whose code this worker lacks: the transition that gives it back
    for a worker with the code, and when it is available again; or, past ``code_wait``,
    the one that fails it, and None (``keel.runtime.worker.missing_code``)."""
    event, again_at = missing_code(history, lease, task, why, now=now, code_wait=code_wait)
    transition = advance(lease.run_id, state, [event], now, [lease], cache=cache)
    if again_at is None:
        return transition, None
    again = ready_row(state, lease.node, lease.attempt, lease.item, again_at)
    return transition.adding(Enqueue(again)), again_at


def timer_fired(state: RunState, timer: Timer, now: float, cache: RunCache) -> Transition:
    """Hand a due timer to its run, and clear it (it fires into nothing when it no
    longer applies)."""
    transition = advance(timer.run_id, state, timer_causes(state, timer), now, cache=cache)
    return transition.adding(ClearTimer(timer.key))


def late_discarded(
    state: RunState, lease: Lease, outcome: Outcome, now: float, cache: RunCache
) -> Transition:
    """Say that an attempt failed at its timeout returned after all; its result is not used."""
    error = outcome.error
    late = LateResultDiscarded(
        node=lease.node, attempt=lease.attempt, item=lease.item,
        outcome="failed" if error else "succeeded",
        error=f"{error.type}: {error.message}" if error else None,
    )  # fmt: skip
    return advance(lease.run_id, state, [late], now, cache=cache)


def leasing(
    transition: Transition,
    free: int,
    *,
    eager: bool,
    owner: str,
    lease_for: float,
    queues: tuple[str, ...] | None,
) -> Transition:
    """Let the transition lease what it makes ready to ``owner``, up to ``free``. While
    work may be waiting on the queue (``eager``: a map's next items), it takes that too,
    sparing a claim transaction (and, with FULL, a disk flush)."""
    take = max(0, free if eager else min(free, len(transition.enqueued)))
    if not take:
        return transition
    return transition.leasing(LeaseRequest(owner, take, lease_for, queues))


def lease_on_commit(
    transitions: list[Transition], free: int, lease: Callable[[Transition, int], Transition]
) -> list[Transition]:
    """Let each transition of a group commit lease (with ``lease``) up to the slots
    that will be free once the batch is recorded. Only a run's last transition in the
    batch may: the ``NodeStarted`` events it appends come after its own events, where a
    later transition of the run expects its own."""
    last = {transition.run_id: index for index, transition in enumerate(transitions)}
    leased: list[Transition] = []
    for index, transition in enumerate(transitions):
        if last[transition.run_id] == index:
            transition = lease(transition, free)
            free -= transition.lease.limit if transition.lease is not None else 0
        leased.append(transition)
    return leased


def left_unleased(committed: Committed) -> bool:
    """Whether the commit queued more attempts than it leased to this worker."""
    return len(committed.claimed) < len(committed.transition.enqueued)


def fills_outbox(committed: Committed) -> bool:
    """Whether the commit put notifications (or a followed run's end) in the outbox."""
    return any(isinstance(write, Notify) for write in committed.transition.writes)


def sets_timer_due(committed: Committed) -> bool:
    """Whether the commit set a timer already due (a run told another something)."""
    transition = committed.transition
    return any(write.timer.due_at <= transition.at for write in transition.of(SetTimer))

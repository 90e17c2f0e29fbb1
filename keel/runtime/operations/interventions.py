"""What people and other systems send to a run: approval decisions, signals, pause and
unpause. Each is an event in the run's history naming who sent it (``by``, the OS user
unless given), committed with whatever follows from it in one transaction: approving a
node schedules what comes after it right away, and any worker takes it from there.

Bad requests are refused before anything is written, with what was wrong: a node that
is not an approval or not waiting, form data that misses the form's schema, a signal
the workflow does not wait for.

A decision is signed where it is made when that process has a signing key (``signer``:
the server's, or the CLI's on the database; ``keel.audit.approvals``): the event carries
the signature over who decided what, on which run and node, with which data, when.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.engine.events import (
    ApprovalDecided,
    Event,
    RunPaused,
    RunUnpaused,
    SignalReceived,
)
from keel.engine.state import ENDED, NodeStatus, RunState, RunStatus, is_finished
from keel.errors import KeelError
from keel.runtime.clock import Clock, clock_for
from keel.runtime.operations.inputs import check_data, with_schema_defaults
from keel.runtime.operations.manual import change_run
from keel.spec.data import check_json
from keel.spec.model import ApprovalNode, SignalNode
from keel.store.protocol import Store
from keel.store.records import RunRecord

if TYPE_CHECKING:  # signing is imported only by a process that signs
    from keel.audit.signing import SigningKey


def act(
    store: Store,
    run_id: str,
    by: str | None,
    events_for: Callable[[RunState, str], list[Event]],
    clock: Clock | None = None,
) -> RunRecord:
    """Record what ``events_for(state, who)`` chooses, as ``who`` (default: the OS user)."""
    who = by or getpass.getuser()
    return change_run(store, run_id, lambda state: events_for(state, who), clock=clock)


def _not_ended(state: RunState) -> None:
    if is_finished(state.status):
        raise KeelError(f"run {state.run_id[:8]} has ended ({state.status.value})")


def asked_approval(state: RunState, node: str) -> ApprovalNode | None:
    """The approval an attempt of task ``node`` asked for (``ApprovalNeeded``), as an
    approval node, while the node waits for it."""
    details = state.nodes[node].details or {}
    if state.nodes[node].status is not NodeStatus.AWAITING or "asked" not in details:
        return None
    assignees = details.get("assignees") or ()
    return ApprovalNode(id=node, title=str(details.get("title") or node),
                        assignees=tuple(str(name) for name in assignees),
                        form=details.get("form"))  # fmt: skip


def _approval(store: Store, state: RunState, node: str) -> ApprovalNode:
    """The approval ``node`` of the run, waiting for a decision."""
    _not_ended(state)
    plan = state.plan
    approvals = [n for n in plan.graph_nodes if isinstance(plan.nodes[n].wait, ApprovalNode)]
    if node not in plan.graph_nodes:
        known = ", ".join(approvals) or "none"
        raise KeelError(f"workflow '{plan.spec.name}' has no node '{node}' (approvals: {known})")
    wait = plan.nodes[node].wait or asked_approval(state, node)
    if not isinstance(wait, ApprovalNode):
        decided = _decided(store, state.run_id, node) if plan.nodes[node].wait is None else None
        if decided is not None:  # a task's attempt asked once, and was answered
            how = "approved" if decided[0].approved else "rejected"
            raise KeelError(f"'{node}' is not waiting for a decision: what it asked was "
                            f"{how} by {decided[0].by}")  # fmt: skip
        raise KeelError(f"node '{node}' is a {plan.nodes[node].kind} node, not an approval")
    status = state.nodes[node].status
    if status is NodeStatus.WAITING:
        raise KeelError(f"approval '{node}' has not opened yet: it waits for the nodes before it")
    if status is NodeStatus.AWAITING and not any(  # a decision not acted on yet: paused
        pending == node and isinstance(event, ApprovalDecided)
        for pending, event in state.to_resolve
    ):
        return wait
    decided = _decided(store, state.run_id, node)
    if decided is None:
        raise KeelError(f"approval '{node}' is not waiting for a decision: it {status.value}")
    event, at = decided
    how = "approved" if event.approved else "rejected"
    when = datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds")
    then = ""
    if status is NodeStatus.AWAITING and state.status is RunStatus.PAUSED:
        then = "; the run is paused and acts on it when unpaused"
    raise KeelError(f"approval '{node}' was already {how} by {event.by} at {when}{then}")


def _decided(store: Store, run_id: str, node: str) -> tuple[ApprovalDecided, float] | None:
    """The last decision recorded for approval ``node``, and when."""
    found = None
    for stored in store.history(run_id):
        if isinstance(stored.event, ApprovalDecided) and stored.event.node == node:
            found = (stored.event, stored.at)
    return found


def approve(
    store: Store,
    run_id: str,
    node: str,
    *,
    data: Any = None,
    comment: str = "",
    by: str | None = None,
    clock: Clock | None = None,
    decider: Callable[[ApprovalNode], None] | None = None,
    signer: SigningKey | None = None,
) -> RunRecord:
    """Approve a waiting approval; ``data`` (checked against its form) becomes its output.
    ``decider`` raises ``ForbiddenError`` when the one deciding may not decide this
    approval (the server checks its assignees against the token's identity); ``signer``
    signs the decision."""
    check_json(data, f"the data for approval '{node}'")
    clock = clock or clock_for(store)

    def events_for(state: RunState, who: str) -> list[Event]:
        wait = _approval(store, state, node)
        if decider is not None:
            decider(wait)
        given = data
        if wait.form is not None:
            given = with_schema_defaults(dict(wait.form), {} if data is None else data)
            check_data(dict(wait.form), given, f"approval '{node}'")
        return [_decision(state.run_id, node, True, who, given, comment, signer, clock)]

    return _signed(store, signer, clock, act(store, run_id, by, events_for, clock))


def reject(
    store: Store,
    run_id: str,
    node: str,
    *,
    comment: str = "",
    by: str | None = None,
    clock: Clock | None = None,
    decider: Callable[[ApprovalNode], None] | None = None,
    signer: SigningKey | None = None,
) -> RunRecord:
    """Reject a waiting approval: the node fails (``Rejected``) and its ``on_failure``
    applies (by default the run fails, after its compensations)."""
    clock = clock or clock_for(store)

    def events_for(state: RunState, who: str) -> list[Event]:
        wait = _approval(store, state, node)
        if decider is not None:
            decider(wait)
        return [_decision(state.run_id, node, False, who, None, comment, signer, clock)]

    return _signed(store, signer, clock, act(store, run_id, by, events_for, clock))


def _decision(
    run_id: str,
    node: str,
    approved: bool,
    who: str,
    data: Any,
    comment: str,
    signer: SigningKey | None,
    clock: Clock,
) -> ApprovalDecided:
    """The decision's event, signed now when there is a key."""
    signature = None
    if signer is not None:
        from keel.audit.approvals import approval_signature

        signature = approval_signature(signer, run_id, node, approved, who, data, comment,
                                       clock.now())  # fmt: skip
    return ApprovalDecided(node=node, approved=approved, by=who, data=data, comment=comment,
                           signature=signature)  # fmt: skip


def _signed(store: Store, signer: SigningKey | None, clock: Clock, record: RunRecord) -> RunRecord:
    """Keep the public key of a decision's signature, for exports to carry."""
    if signer is not None:
        store.add_audit_key(signer.key_id, signer.public_key.to_text(), clock.now())
    return record


def send_signal(
    store: Store,
    run_id: str,
    name: str,
    data: Any = None,
    *,
    by: str | None = None,
    clock: Clock | None = None,
) -> RunRecord:
    """Deliver signal ``name`` to a run. A signal node waiting for it takes ``data`` as
    its output now; if none waits yet, the signal is kept until one does."""
    check_json(data, f"the data of signal '{name}'")

    def events_for(state: RunState, who: str) -> list[Event]:
        _not_ended(state)
        plan = state.plan
        nodes = plan.signal_nodes.get(name)
        if not nodes:
            known = ", ".join(sorted(plan.signal_nodes)) or "none"
            raise KeelError(
                f"workflow '{plan.spec.name}' waits for no signal '{name}' (signals: {known})"
            )
        open_nodes = [n for n in nodes if state.nodes[n].status not in ENDED]
        kept = len(state.signals.get(name, ()))
        if len(open_nodes) <= kept:
            raise KeelError(
                f"no node of run {state.run_id[:8]} is left to take signal '{name}': "
                + ("each has ended" if not open_nodes else f"{kept} such signals wait already")
            )
        wait = plan.nodes[open_nodes[0]].wait
        assert isinstance(wait, SignalNode)
        if wait.payload_schema is not None:
            check_data(dict(wait.payload_schema), data, f"signal '{name}'")
        return [SignalReceived(name=name, data=data, by=who)]

    return act(store, run_id, by, events_for, clock)


def pause_run(
    store: Store,
    run_id: str,
    *,
    reason: str = "",
    by: str | None = None,
    clock: Clock | None = None,
) -> RunRecord:
    """Pause a run: nothing new starts (its queued attempts are held); attempts running
    now finish and are recorded."""

    def events_for(state: RunState, who: str) -> list[Event]:
        _not_ended(state)
        if state.status is RunStatus.PAUSED:
            raise KeelError(f"run {state.run_id[:8]} is paused already")
        return [RunPaused(by=who, reason=reason)]

    return act(store, run_id, by, events_for, clock)


def unpause_run(
    store: Store,
    run_id: str,
    *,
    reason: str = "",
    by: str | None = None,
    clock: Clock | None = None,
) -> RunRecord:
    """Let a paused run go on: what came meanwhile (outcomes, decisions, signals, timers)
    is acted on now, and its held attempts go back on the queue."""

    def events_for(state: RunState, who: str) -> list[Event]:
        if state.status is not RunStatus.PAUSED:
            raise KeelError(f"run {state.run_id[:8]} is {state.status.value}, not paused")
        return [RunUnpaused(by=who, reason=reason)]

    return act(store, run_id, by, events_for, clock)

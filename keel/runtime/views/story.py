"""A run's story: what happened, in order, in words, with who did it and the data.

For the auditor who must reproduce "why was this account flagged": every event of the
history becomes one entry (time, node, attempt or item, what happened, who or what did
it, and the values involved: the arguments a node was scheduled with, its output or
error, the data and comment of a decision...). Entries the workflow's definition
decided (a node scheduled, skipped, a wait opened, the run completed) are marked as
decided by ``keel``; the others came from outside the engine: a worker's result, a
person, a signal, a timer. The history is split into those two by replaying it with its
own definition (``keel.engine.replay``), and the state it replays to is checked against
the run's row (``keel verify``'s check), so the story says whether the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keel.engine.events import (
    ApprovalDecided,
    ApprovalOverdue,
    ChildRunEnded,
    Event,
    LateResultDiscarded,
    MapExpanded,
    NodeAwaiting,
    NodeFailed,
    NodeReclaimed,
    NodeReused,
    NodeScheduled,
    NodeSetByHand,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    NodeWithdrawn,
    RunCancelled,
    RunCompleted,
    RunDeadlineExceeded,
    RunFailed,
    RunFailing,
    RunForked,
    RunLate,
    RunPaused,
    RunRetried,
    RunStarted,
    RunUnpaused,
    SignalReceived,
    TimerFired,
    node_of,
)
from keel.engine.plan import FAILURE_HANDLER_STEP, Plan
from keel.engine.replay import recorded_steps
from keel.engine.state import RunState
from keel.runtime.views.audit import summary_mismatches
from keel.store.protocol import Store
from keel.store.records import RunRecord, StoredEvent
from keel.store.tombstones import refuse_pruned

#: who made the decisions the definition makes
KEEL = "keel"


def _started_by(event: RunStarted) -> str | None:
    if event.trigger is not None:
        kind, source = event.trigger.get("kind", "trigger"), event.trigger.get("source", "")
        return f"{kind} {source}".strip()
    if event.parent is not None:
        return f"run {event.parent.get('run_id', '')[:8]} (node {event.parent.get('node')})"
    return None if event.by is None else f"token {event.by}"


def _step(node: str | None) -> str:
    """A failure-path step in words (a compensation, the run's failure handler)."""
    if node is None:
        return ""
    if node.startswith("compensate:"):
        return "compensation "
    if node == FAILURE_HANDLER_STEP:
        return "failure handler "
    return ""


def _telling(event: Event, worker: str | None) -> tuple[str, str | None, dict[str, Any]]:
    """What an event says: the words, who did it (None: not known, or nobody), and
    the values it carries, whole."""
    match event:
        case RunStarted(fork=fork) if fork is not None:
            what = f"run started: a fork of run {fork.get('run', '')[:8]} from {fork.get('node')}"
            return what, _started_by(event), {"input": event.input}
        case RunStarted():
            return "run started", _started_by(event), {"input": event.input}
        case NodeScheduled(attempt=attempt, not_before=not_before):
            what = f"{_step(event.node)}scheduled" + (" again (a retry)" if attempt > 1 else "")
            values: dict[str, Any] = {"args": event.args}
            if not_before is not None:
                values["not_before"] = not_before
            return what, None, values
        case NodeStarted(worker=started_by):
            return "started", started_by, {}
        case NodeReclaimed(owner=owner, reason=reason):
            return f"taken back from {owner} ({reason}) and queued again", None, {}
        case NodeSucceeded(output=output):
            return "succeeded", worker, {"output": output}
        case NodeFailed(error=error):
            values = {"error": {"type": error.type, "message": error.message}}
            return f"failed ({error.type})", worker, values
        case NodeSkipped(reason=reason, upstream_failed=upstream):
            return ("not run: upstream failed" if upstream else "skipped"), None, {"reason": reason}
        case MapExpanded(count=count):
            return f"expanded into {count} item{'s' if count != 1 else ''}", None, {}
        case RunCompleted(output=output):
            return "run succeeded", None, {"output": output}
        case RunFailing(reason=reason):
            return "run failing: its failure path runs first", None, {"reason": reason}
        case RunFailed(reason=reason, compensation_failed=undone):
            values = {"reason": reason}
            if undone:
                values["compensation_failed"] = undone
            return "run failed", None, values
        case RunCancelled(reason=reason, by=by):
            return "run cancelled", by or None, {"reason": reason}
        case NodeWithdrawn(reason=reason):
            return "withdrawn from the queue", None, {"reason": reason}
        case RunDeadlineExceeded(deadline=deadline):
            return f"the run passed its deadline ({deadline:g} s)", None, {}
        case RunLate(expected=expected):
            return f"the run is late (expected within {expected:g} s)", None, {}
        case RunRetried(by=by, nodes=nodes, reason=reason):
            return "run retried by hand", by, {"nodes": nodes, "reason": reason}
        case NodeSetByHand(by=by, output=output, reason=reason):
            return "output set by hand", by, {"output": output, "reason": reason}
        case LateResultDiscarded(outcome=outcome, error=error):
            values = {} if error is None else {"error": error}
            return f"a result after its timeout was discarded ({outcome})", None, values
        case NodeAwaiting(waits_for=waits_for, details=details, until=until):
            title = details.get("title")
            what = f"waits for {waits_for}" + (f": {title}" if isinstance(title, str) else "")
            values = {"details": details}
            if until is not None:
                values["until"] = until
            return what, None, values
        case ApprovalDecided(approved=approved, by=by, data=data, comment=comment):
            values = {"data": data} if approved else {}
            if comment:
                values["comment"] = comment
            return ("approved" if approved else "rejected"), by, values
        case ApprovalOverdue(timeout=timeout):
            return f"approval overdue ({timeout:g} s): notified, it waits on", None, {}
        case SignalReceived(name=name, data=data, by=by):
            return f"signal {name} received", by or None, {"data": data}
        case TimerFired():
            return "its timer fired", None, {}
        case ChildRunEnded(run_id=child, status=status, output=output, reason=reason):
            values = {"output": output} if status == "succeeded" else {"reason": reason}
            return f"child run {child[:8]} {status}", None, values
        case RunPaused(by=by, reason=reason):
            return "run paused", by, {"reason": reason} if reason else {}
        case RunUnpaused(by=by, reason=reason):
            return "run unpaused", by, {"reason": reason} if reason else {}
        case NodeReused(output=output, from_run=source, from_seq=seq, compensated=undone):
            what = f"reused from run {source[:8]} (its event {seq})"
            if undone:
                what += ", whose effect that run undid"
            return what, None, {"output": output}
        case RunForked(run_id=fork, node=node, by=by):
            return f"forked into run {fork[:8]}, which runs {node} and what follows", by, {}
    raise AssertionError(f"no words for {event.kind}")  # every kind has a case above


def story_entries(plan: Plan, run_id: str, history: Sequence[StoredEvent]) -> tuple[
    list[dict[str, Any]], RunState
]:  # fmt: skip
    """One entry per event, in order, and the state the history replays to."""
    steps, state = recorded_steps(plan, run_id, history)
    decided = {made.seq for step in steps for made in step.decisions}
    workers: dict[tuple[str, int, int | None], str] = {}
    entries = []
    for stored in history:
        event = stored.event
        attempt, item = getattr(event, "attempt", None), getattr(event, "item", None)
        node = node_of(event)
        if isinstance(event, NodeStarted):
            workers[(event.node, event.attempt, event.item)] = event.worker
        worker = None if node is None or attempt is None else workers.get((node, attempt, item))
        what, by, values = _telling(event, worker)
        if by is None and stored.seq in decided:
            by = KEEL
        entries.append({
            "seq": stored.seq, "at": stored.at, "kind": event.kind, "node": node,
            "attempt": attempt, "item": item, "what": what, "by": by,
            "decided": stored.seq in decided, "values": values,
        })  # fmt: skip
    return entries, state


def story_document(record: RunRecord, plan: Plan, history: Sequence[StoredEvent]) -> dict[str, Any]:
    """The run's story (``keel replay RUN --json``, ``GET /runs/{id}/story``): the run,
    whether its row agrees with the state its history replays to, and every entry."""
    entries, state = story_entries(plan, record.id, history)
    mismatches = summary_mismatches(record, state)
    return {
        "run_id": record.id, "workflow": record.workflow, "spec_version": record.spec_version,
        "status": record.status, "events": len(history),
        "replayed": {"status": state.status.value, "output": state.output,
                     "reason": state.reason},
        "matches": not mismatches, "mismatches": mismatches, "entries": entries,
    }  # fmt: skip


def run_story(store: Store, record: RunRecord, plan: Plan) -> dict[str, Any]:
    """``story_document`` of a run in the store (``plan``: its recorded definition's);
    ``RunPrunedError`` for a pruned run: it has no history left to tell."""
    refuse_pruned(record)
    return story_document(record, plan, store.history(record.id))

"""Runs, nodes, waits, failures and circuits as JSON documents: the one shape both
``keel ... --json`` and the HTTP API give, so a script written against one reads the
other. Plain dicts of JSON values; field names are the API's contract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from keel.audit.pruned import pruned_document
from keel.audit.signing import PublicKey
from keel.engine.events import ErrorInfo, RunStarted, node_of, to_data
from keel.engine.plan import Plan
from keel.engine.state import RunState
from keel.errors import RunNotFoundError
from keel.runtime.tracing.context import of_run
from keel.runtime.views.activity import Activity, pause_in, run_activity
from keel.runtime.views.audit import pruned_check, summary_mismatches, verify_run
from keel.runtime.views.failures import FailedRun
from keel.runtime.views.ledger import ledger_document
from keel.runtime.views.report import NodeReport, RunReport, run_report
from keel.store.deployments import Deployment
from keel.store.protocol import Store
from keel.store.records import CircuitState, RunRecord, StoredEvent, Wait
from keel.store.tokens import TokenRecord


def error_document(error: ErrorInfo | None) -> dict[str, Any] | None:
    return None if error is None else {"type": error.type, "message": error.message}


def run_document(record: RunRecord) -> dict[str, Any]:
    """A run as the runs table has it (``keel runs --json``, ``GET /runs``)."""
    return {
        "id": record.id, "workflow": record.workflow, "status": record.status,
        "spec_version": record.spec_version, "created_at": record.created_at,
        "updated_at": record.updated_at, "input": record.input, "output": record.output,
        "reason": record.reason, "events": record.last_seq, "origin": record.origin,
        "parent_run": record.parent_run, "parent_node": record.parent_node,
        "started_by": record.started_by, "late": record.late, "pruned_at": record.pruned_at,
    }  # fmt: skip


def listed_run_document(record: RunRecord, activity: Activity | None) -> dict[str, Any]:
    """A run in a list (``GET /runs``, ``keel runs --json``): its row, and for a run
    not ended what it is doing (``activity``: in words; ``activity_kind``: running,
    queued, waiting or stalled)."""
    return {**run_document(record), "activity": None if activity is None else activity.text,
            "activity_kind": None if activity is None else activity.kind}  # fmt: skip


def node_document(node: NodeReport) -> dict[str, Any]:
    return {
        "id": node.id, "status": node.status, "attempts": node.attempts,
        "retries": node.retries, "reclaimed": node.reclaimed, "started_at": node.started_at,
        "attempt_started_at": node.attempt_started_at,
        "ended_at": node.ended_at, "duration": node.duration,
        "input": node.args, "output": node.output, "error": error_document(node.error),
        "reason": node.reason, "items": node.items, "items_done": node.items_done,
        "retry_at": node.retry_at,
        "waits_for": node.waits_for if node.status == "awaiting" else None,
        "wait": node.wait, "until": node.until, "decision": node.decision,
    }  # fmt: skip


def run_detail(
    store: Store, record: RunRecord, plan: Plan, now: float,
    history: Sequence[StoredEvent] | None = None, report: RunReport | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Everything ``keel show`` tells of a run, read from its history (the runs table is
    only checked against it: ``mismatches``). ``plan``: the run's; ``now``: the store's
    time, for what the run is doing and how long it has been going (``elapsed``, which
    ``expected_duration`` and ``late`` are about). A caller that read the ``history``
    (and replayed it into ``report``) for more than this passes them, so neither is
    done twice."""
    if record.pruned_at is not None:
        return pruned_detail(store, record, plan)
    history = store.history(record.id) if history is None else history
    report = run_report(plan, history) if report is None else report
    children = store.list_runs(parent=record.id, limit=1_000)
    state = report.state
    activity = run_activity(store, dataclasses.replace(record, status=state.status.value), now,
                            state=state, paused=pause_in(history))  # fmt: skip
    data = run_document(record)
    data.update(status=state.status.value, output=state.output, reason=state.reason,
                input=state.input, late=state.late)  # fmt: skip
    data["activity"] = None if activity is None else activity.text
    data["duration"] = report.duration
    data["elapsed"] = report.elapsed(now)
    data["expected_duration"] = plan.expected_duration
    data["retries"] = report.retries
    data["set_by_hand"] = report.set_by_hand
    # a fork: the run and node it was forked from; the runs forked from this one
    data["forked_from"] = report.forked_from
    data["forks"] = report.forks
    data["mismatches"] = summary_mismatches(record, state)
    data["nodes"] = [node_document(node) for node in report.nodes.values()]
    data["parent"] = (None if record.parent_run is None else
                      {"run_id": record.parent_run, "node": record.parent_node})  # fmt: skip
    data["children"] = [child.id for child in children]
    data["trigger"] = trigger_document(store, history[0].event if history else None)
    data["trace"] = trace_document(record.id, history[0].event if history else None)
    # the LLM ledger per node and in total (None: no model or tool calls)
    data["llm"] = ledger_document(store.run_call_sums(record.id), list(report.nodes))
    return data


def pruned_detail(store: Store, record: RunRecord, plan: Plan) -> dict[str, Any]:
    """``run_detail`` of a pruned run: its row (its payloads cleared) and its tombstone
    checked (``pruned``); it has no history left to tell its nodes."""
    children = store.list_runs(parent=record.id, limit=1_000)
    ended = record.ended_at
    data = run_document(record)
    data.update(
        activity=None, duration=None if ended is None else ended - record.created_at,
        elapsed=None, expected_duration=plan.expected_duration, retries=0, set_by_hand=[],
        mismatches=[], nodes=[], trigger=None, trace=None, llm=None,
        parent=(None if record.parent_run is None else
                {"run_id": record.parent_run, "node": record.parent_node}),
        children=[child.id for child in children],
        pruned=pruned_document(pruned_check(store, record)),
    )  # fmt: skip
    return data


def trace_document(run_id: str, first: Any) -> dict[str, Any]:
    """The run's trace context (``RunStarted.trace``; derived from the run id for a run
    started before runs recorded one): ``trace_id``, the run span's ``span_id``, the
    ``parent_id`` of the span that started the run (or None), and its ``traceparent``."""
    recorded = of_run(first.trace if isinstance(first, RunStarted) else None, run_id)
    data = recorded.to_data()
    return {"trace_id": data["trace_id"], "span_id": data["span_id"],
            "parent_id": data.get("parent_id"), "traceparent": recorded.traceparent}  # fmt: skip


def trigger_document(store: Store, first: Any) -> dict[str, Any] | None:
    """What started the run without a person (``RunStarted.trigger``): kind, source and
    key; for a completion, the ended run's status as well (read from that run now)."""
    trigger = first.trigger if isinstance(first, RunStarted) else None
    if trigger is None:
        return None
    doc: dict[str, Any] = dict(trigger)
    if doc.get("kind") == "completion":
        try:
            doc["status"] = store.get_run(doc["key"]).status
        except RunNotFoundError:  # that run is gone (pruned)
            doc["status"] = None
    return doc


def event_document(stored: StoredEvent) -> dict[str, Any]:
    """One event of a history with its place in the hash chain."""
    data = to_data(stored.event)
    kind = data.pop("kind")
    return {"seq": stored.seq, "at": stored.at, "kind": kind, "node": node_of(stored.event),
            "data": data, "prev_hash": stored.prev_hash, "hash": stored.hash}  # fmt: skip


def event_line(stored: StoredEvent) -> dict[str, Any]:
    """One event as ``keel history RUN --json`` writes it (a line each): its run, place
    and chain link, then the event's own fields (``keel.testing`` reads a run's history
    in this shape)."""
    return {"run_id": stored.run_id, "seq": stored.seq, "at": stored.at,
            "prev_hash": stored.prev_hash, **to_data(stored.event)}  # fmt: skip


def wait_document(wait: Wait) -> dict[str, Any]:
    return {"run_id": wait.run_id, "workflow": wait.workflow, "node": wait.node,
            "waits_for": wait.waits_for, "since": wait.since, "until": wait.until,
            "run_status": wait.run_status, **wait.details}  # fmt: skip


def failed_document(item: FailedRun) -> dict[str, Any]:
    return {"id": item.record.id, "workflow": item.record.workflow,
            "failed_at": item.record.updated_at, "node": item.node, "attempts": item.attempts,
            "reason": item.record.reason, "error": error_document(item.error)}  # fmt: skip


def circuit_document(circuit: CircuitState) -> dict[str, Any]:
    return {"name": circuit.name, "failures": circuit.failures,
            "open_until": circuit.open_until, "probe_until": circuit.probe_until}  # fmt: skip


def deployment_document(d: Deployment, current: Deployment | None = None) -> dict[str, Any]:
    """A deploy; with the workflow's ``current`` (newest) deploy, whether it is that one
    (the same version deployed twice is current once: by its newest deploy)."""
    doc: dict[str, Any] = {"workflow": d.workflow, "version": d.version,
                           "deployed_at": d.deployed_at, "deployed_by": d.deployed_by,
                           "source": d.source}  # fmt: skip
    if current is not None:
        doc["current"] = d.id == current.id
    return doc


def token_document(token: TokenRecord, now: float) -> dict[str, Any]:
    """A token as admins see it: never its secret (the store does not have it)."""
    return {"name": token.name, "role": token.role, "groups": list(token.groups),
            "created_at": token.created_at, "created_by": token.created_by,
            "expires_at": token.expires_at, "revoked_at": token.revoked_at,
            "revoked_by": token.revoked_by, "usable": token.usable_at(now)}  # fmt: skip


def workflows_document(store: Store) -> list[dict[str, Any]]:
    """Each deployed workflow's current deploy and how many versions it has (``GET
    /workflows``, ``keel workflows --json``), by name."""
    from keel.store.deployments import current_versions

    every = store.deployments()
    versions: dict[str, set[str]] = {}
    for d in every:
        versions.setdefault(d.workflow, set()).add(d.version)
    return [{**deployment_document(d), "versions": len(versions[name])}
            for name, d in sorted(current_versions(every).items())]  # fmt: skip


def deployments_document(store: Store, name: str) -> list[dict[str, Any]]:
    """Every deploy of workflow ``name``, oldest first, marking the current one (``GET
    /workflows/NAME``); ``WorkflowNotFoundError`` when it was never deployed."""
    from keel.errors import WorkflowNotFoundError

    history = store.deployments(name)
    if not history:
        raise WorkflowNotFoundError(f"no workflow named '{name}' is deployed")
    return [deployment_document(d, history[-1]) for d in history]


def verification_document(
    store: Store,
    record: RunRecord,
    state_of: Callable[[str], RunState],
    keys: Mapping[str, PublicKey] | None = None,
) -> dict[str, Any]:
    """``keel verify`` of one run (``GET /runs/ID/verify``): its hash chain, and its row
    against its history (replayed by ``state_of``); of a pruned run, its tombstone
    (``pruned``: ``keel.audit.pruned.pruned_document``) with ``keys`` trusted (None: the
    configured audit key's)."""
    if record.pruned_at is not None:  # no history left: its tombstone is checked
        check = pruned_check(store, record, keys)
        return {"run_id": record.id, "intact": check.intact, "events": 0,
                "head_hash": record.head_hash, "problems": list(check.problems),
                "mismatches": [], "pruned": pruned_document(check)}  # fmt: skip
    report, mismatches = verify_run(store, record, state_of)
    return {"run_id": record.id, "intact": report.intact and not mismatches,
            "events": report.events, "head_hash": report.head_hash,
            "problems": list(report.problems), "mismatches": mismatches,
            "pruned": None}  # fmt: skip

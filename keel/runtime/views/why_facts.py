"""What ``keel why`` reads before it explains (``keel.runtime.views.why``): the times only
the history has (``replay``, into a ``Timeline``: when each attempt was queued and
started and what queued it, when a wait opened, who paused the run) and the few facts
only the store has (``gather``, into ``StoreFacts``), each read once and only when an
attempt needs it: the run's attempts on the ready queue, the workers, the circuits, the
holders of its concurrency keys, the starts in its rate windows, its child runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
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
from keel.engine.state import NodeStatus, RunState, apply, is_finished
from keel.errors import RunNotFoundError
from keel.spec.model import SubworkflowNode
from keel.store.presence import WorkerRecord
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

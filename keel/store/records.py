"""The values that cross the store boundary: runs (and the change feed's view of them),
stored events, ready work, timers, waits, circuits, the outbox (a transition and its
writes are in ``keel.store.writes``).

Plain frozen dataclasses, the same for every backend, so the runtime never sees a
database row. Times are seconds since the epoch, supplied by the caller (the runtime's
clock), never read by the store itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from keel.engine.events import Event
from keel.store.blobs import MARKER, column_data, filled
from keel.store.chain import link_hash

#: the ``item`` of work that is a whole node rather than one item of a map
NO_ITEM = -1
#: no blob texts at hand: rows that name none need none
NO_BLOBS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    workflow: str
    spec_version: str
    status: str
    input: Any
    output: Any
    reason: str | None
    created_at: float
    updated_at: float
    last_seq: int
    head_hash: str
    #: where the workflow's code was loaded from (a file path or module), for resuming
    origin: str | None
    #: a child run: the parent run and its node that waits for this one
    parent_run: str | None = None
    parent_node: str | None = None
    #: the identity that started the run through the API (a token's name), if any
    started_by: str | None = None
    #: still going past its workflow's expected duration (``RunLate``); a late run that
    #: ended keeps it, unless a retry by hand gave it its time again
    late: bool = False
    #: a failed run: the node whose failure failed it (None: it failed as a whole) and
    #: the type of that node's last error; None for a run not failed
    failed_node: str | None = None
    error_type: str | None = None
    #: when the run ended (with its final status); None while it has not
    ended_at: float | None = None
    #: when the run's payloads were removed (``keel prune``: its events, input and
    #: output are gone, a tombstone is kept, ``Store.tombstone``); None: never
    pruned_at: float | None = None


@dataclass(frozen=True, slots=True)
class RunChange:
    """A run as the change feed gives it (``Store.runs_changed``): enough to tell
    whether what a reader shows of it is stale, and its place in the feed
    (``position``)."""

    id: str
    workflow: str
    status: str
    last_seq: int
    updated_at: float
    late: bool
    #: when the run was created: where a list ordered by creation would place it, told
    #: by the feed so a reader need not read the run for it
    created_at: float

    @property
    def position(self) -> tuple[float, str]:
        """The ``after`` that asks for the changes that follow this one."""
        return (self.updated_at, self.id)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event in a run's history: its place, time, and the hash of the one before."""

    run_id: str
    seq: int
    at: float
    event: Event
    prev_hash: str
    #: this event's own link (the ``prev_hash`` of the event after it): the head of the
    #: run's history when it is the last, which a transition decided on top of it expects
    hash: str = ""


@dataclass(frozen=True, slots=True)
class Ready:
    """An attempt to put on the ready queue (from a ``NodeScheduled`` event)."""

    node: str
    attempt: int
    item: int | None = None
    queue: str = "default"
    priority: int = 0
    available_at: float = 0.0
    #: the circuit breaker the attempt needs: it is not claimed while that is open
    circuit: str | None = None
    #: the concurrency key: at most ``limit_max`` attempts with this key are held at once,
    #: across every worker
    limit_key: str | None = None
    limit_max: int = 0
    #: the rate-limit key: at most ``rate_max`` attempts with this key start in any
    #: ``rate_per`` seconds, across every worker
    rate_key: str | None = None
    rate_max: int = 0
    rate_per: float = 1.0

    @property
    def limited(self) -> bool:
        """Whether a claim must check a limit or circuit before taking it."""
        return self.circuit is not None or self.limit_key is not None or self.rate_key is not None


@dataclass(frozen=True, slots=True)
class Lease:
    """An attempt held by a worker, as returned by ``claim``; names the ready row exactly."""

    run_id: str
    node: str
    item: int | None
    attempt: int
    owner: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class QueuedAttempt:
    """An attempt on the ready queue as ``Store.ready_attempts`` reads it: what was
    queued (its ``Ready``: queue, due time, circuit, limit keys), whether a pause holds it
    back, and who holds its lease until when (``owner`` None: it waits to be claimed)."""

    run_id: str
    ready: Ready
    held: bool = False
    owner: str | None = None
    lease_expires: float | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed attempt and the ``NodeStarted`` event recorded with the claim."""

    lease: Lease
    started: StoredEvent
    #: the attempt's queue, and when it became ready there (its ``available_at``): the
    #: time it waited for a worker is ``started.at - ready_at`` (queue lag)
    queue: str = "default"
    ready_at: float | None = None


@dataclass(frozen=True, slots=True)
class Timer:
    """A durable wake-up for a run: at ``due_at``, the runtime hands ``data`` to the engine."""

    run_id: str
    key: str
    due_at: float
    data: Any = None


@dataclass(frozen=True, slots=True)
class Wait:
    """A node waiting for something outside its run (``NodeAwaiting``), as listed by
    ``Store.waits``: what it waits for, since when, until when, and the details."""

    run_id: str
    node: str
    waits_for: str
    since: float
    until: float | None
    details: dict[str, Any]
    #: filled in when read: the run's workflow and status
    workflow: str = ""
    run_status: str = ""


@dataclass(frozen=True, slots=True)
class CircuitOutcome:
    """How an attempt that needs a circuit ended, with the circuit's policy: ``failures``
    in a row open it for ``cooldown`` seconds; a success closes it."""

    name: str
    ok: bool
    failures: int
    cooldown: float


@dataclass(frozen=True, slots=True)
class CircuitState:
    """A circuit that has counted failures since it last closed."""

    name: str
    failures: int
    #: open (attempts that need it wait) until then; after it, one probe is let through
    open_until: float | None
    probe_until: float | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class Notification:
    """A message to deliver because of the transition's events (the notifier's spec
    data and the JSON it is sent), kept in the outbox until it is delivered."""

    notifier: dict[str, Any]
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    run_id: str
    notifier: dict[str, Any]
    payload: dict[str, Any]
    #: delivery attempts so far (this one included, when just taken)
    deliveries: int
    delivered_at: float | None = None
    error: str | None = None


class Claims(list[Claimed]):
    """What ``claim`` took, and when attempts it left behind because of a rate limit
    may be taken (``retry_at``, None when nothing was held back that way)."""

    retry_at: float | None = None


def item_column(item: int | None) -> int:
    """The ``item`` as stored: ``NO_ITEM`` for a whole node (a key column cannot be NULL)."""
    return NO_ITEM if item is None else item


def item_of(column: int) -> int | None:
    return None if column == NO_ITEM else column


def ready_row(
    run_id: str, r: Ready, owner: str | None = None, expires: float | None = None
) -> tuple[Any, ...]:
    """A ready-queue row as both backends insert it (``insert_ready``'s columns)."""
    return (run_id, r.node, item_column(r.item), r.attempt, r.queue, r.priority, r.available_at,
            r.circuit, r.limit_key, r.limit_max if r.limit_key else None, r.rate_key,
            r.rate_max if r.rate_key else None, r.rate_per if r.rate_key else None, owner,
            expires)  # fmt: skip


def run_record(row: Sequence[Any], blobs: Mapping[str, str] = NO_BLOBS) -> RunRecord:
    """A run as both backends select it (``select_run``'s columns, in order); ``blobs``:
    the texts of the blobs its input and output columns may name (``keel.store.blobs``)."""
    (run_id, workflow, version, status, run_input, output, reason, created, updated, last_seq,
     head, origin, parent_run, parent_node, started_by, late, failed_node,
     error_type, ended_at, pruned_at) = row  # fmt: skip
    where = f"run {run_id}"
    return RunRecord(
        id=run_id,
        workflow=workflow,
        spec_version=version,
        status=status,
        input=column_data(run_input, blobs, where),
        output=None if output is None else column_data(output, blobs, where),
        reason=reason,
        created_at=created,
        updated_at=updated,
        last_seq=last_seq,
        head_hash=head,
        origin=origin,
        parent_run=parent_run,
        parent_node=parent_node,
        started_by=started_by,
        late=bool(late),
        failed_node=failed_node,
        error_type=error_type,
        ended_at=None if ended_at is None else float(ended_at),
        pruned_at=None if pruned_at is None else float(pruned_at),
    )


def run_change_of(row: Sequence[Any]) -> RunChange:
    """``runs_changed``' columns."""
    run_id, workflow, status, last_seq, updated, late, created = row
    return RunChange(run_id, workflow, status, last_seq, updated, bool(late), created)


# --- rows as both backends select them --------------------------------------------------


def spec_from_row(version: str, text: str) -> Any:
    """The stored definition of ``version``, checked: ``StoreError`` if it no longer
    parses or no longer hashes to its version (it was altered in the database)."""
    from pydantic import ValidationError

    from keel.errors import StoreError
    from keel.spec.model import WorkflowSpec

    try:
        spec = WorkflowSpec.model_validate_json(text)
    except ValidationError as exc:
        raise StoreError(
            f"the stored definition {version[:12]} cannot be read (it was altered in the "
            f"database): {exc.error_count()} problems, first: {exc.errors()[0]['msg']}"
        ) from None
    if spec.version != version:
        raise StoreError(
            f"the stored definition {version[:12]} no longer hashes to its version "
            f"(now {spec.version[:12]}): it was altered in the database"
        )
    return spec


def stored_event_of(row: Sequence[Any], blobs: Mapping[str, str] = NO_BLOBS) -> StoredEvent:
    """``select_history``'s columns: run_id, seq, at, data, prev_hash; ``blobs``: the
    texts of the blobs the event may name, to give it back whole (``keel.store.blobs``).
    Its hash is the stored text's, references included, as the chain has it."""
    from keel.engine.events import from_data

    run, seq, at, data, prev = row
    values = json.loads(data)
    if data.startswith(MARKER):  # ``has_blobs``, for every row read
        values = filled(values, blobs, f"run {run} event {seq}")
    return StoredEvent(run, seq, at, from_data(values), prev,
                       link_hash(prev, run, seq, at, data))  # fmt: skip


def wait_of(row: Sequence[Any]) -> Wait:
    """``select_waits``' columns."""
    run, node, kind, since, until, details, workflow, status = row
    return Wait(run, node, kind, since, until, json.loads(details), workflow, status)


def lease_of(row: Sequence[Any]) -> Lease:
    """``select_leases_of_run``'s columns (and ``select_limit_holders``')."""
    run, node, item, attempt, owner, expires = row
    return Lease(run, node, item_of(item), attempt, owner, expires)


def queued_attempt_of(row: Sequence[Any]) -> QueuedAttempt:
    """``select_ready_of_run``'s columns."""
    (run, node, item, attempt, queue, priority, available_at, circuit, limit_key, limit_max,
     rate_key, rate_max, rate_per, held, owner, expires) = row  # fmt: skip
    ready = Ready(node, attempt, item_of(item), queue, priority, available_at, circuit,
                  limit_key, limit_max or 0, rate_key, rate_max or 0,
                  1.0 if rate_per is None else float(rate_per))  # fmt: skip
    return QueuedAttempt(run, ready, bool(held), owner, expires)


def timer_of(row: Sequence[Any]) -> Timer:
    """``select_due_timers``' columns."""
    run, key, due, data = row
    return Timer(run, key, due, json.loads(data))

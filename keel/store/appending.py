"""What the store computes, apart from any SQL, when it writes a transition: the rows of
appended events with their hash links (and the blobs of their large values, see
``keel.store.blobs``), the order of a group commit, and the attempts a transition
leases to its worker with their ``NodeStarted`` events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from keel.engine.events import Event, NodeStarted, node_of, to_data
from keel.errors import ConflictError, RunNotFoundError
from keel.store.blobs import BLOB_THRESHOLD, stored_payload
from keel.store.chain import canonical_json, link_hash
from keel.store.limits import Candidate
from keel.store.records import Claimed, Lease, Ready, StoredEvent, item_of
from keel.store.writes import Transition


@dataclass(slots=True)
class Appended:
    """Events linked onto a run's head: the rows to insert, the blobs their references
    name (text by name), and the run's new head."""

    rows: list[tuple[Any, ...]]
    stored: list[StoredEvent]
    last_seq: int
    head_hash: str
    blobs: dict[str, str] = field(default_factory=dict)


def link_events(
    run_id: str,
    head: tuple[Any, Any] | None,
    events: Sequence[Event],
    at: float,
    expected_seq: int | None,
    expected_head: str | None = None,
    threshold: int = BLOB_THRESHOLD,
) -> Appended:
    """Number and hash-link ``events`` after the run's ``head`` (last seq, head hash),
    refusing a run that is missing or whose head is not the expected one: a count
    alone would let through a run another process moved by as many events. Values
    longer than ``threshold`` are stored as blobs, the links made over the stored text."""
    if head is None:
        raise RunNotFoundError(f"no run with id {run_id}")
    seq, prev = int(head[0]), str(head[1])
    if expected_seq is not None and seq != expected_seq:
        raise ConflictError(
            f"run {run_id} is at event {seq}, not {expected_seq}: another process moved it"
        )
    if expected_head is not None and prev != expected_head:
        raise ConflictError(
            f"run {run_id}: event {seq} is not the one this change was decided on "
            "(another process moved it)"
        )
    at = float(at)  # what the column gives back, so the hash verifies later
    appended = Appended([], [], seq, prev)
    for event in events:
        seq += 1
        data = to_data(event)
        payload = canonical_json(data)
        if len(payload) > threshold:  # rare: the common event costs this ``len`` only
            payload, blobs = stored_payload(data, payload, threshold)
            appended.blobs.update(blobs)
        node = node_of(event)
        appended.rows.append((run_id, seq, at, event.kind, node, payload, prev))
        link = link_hash(prev, run_id, seq, at, payload)
        appended.stored.append(StoredEvent(run_id, seq, at, event, prev, link))
        prev = link
    appended.last_seq, appended.head_hash = seq, prev
    return appended


class BatchOrder:
    """The transitions of one ``commit`` call, run by run: a transition decided on top
    of an earlier one of its run in the same call (``expected_head`` None) must not
    commit once that earlier one was refused, whatever the run's sequence number says,
    so every later transition of a refused run is refused too, to be decided again."""

    __slots__ = ("_refused",)

    def __init__(self) -> None:
        self._refused: set[str] = set()

    def admit(self, t: Transition) -> None:
        if t.run_id in self._refused:
            raise ConflictError(
                f"run {t.run_id}: an earlier change of this run in the same commit was "
                "refused, and this one was decided on top of it"
            )

    def refused(self, t: Transition) -> None:
        self._refused.add(t.run_id)


def leasable_now(
    enqueue: Sequence[Ready], at: float, queues: Sequence[str] | None, limit: int
) -> list[Ready]:
    """New attempts a transition that leases to its worker hands it straight away: due,
    on one of its queues, and needing no circuit or limit (those only ``claim`` takes)."""
    on = None if queues is None else set(queues)
    return [
        r for r in enqueue
        if r.available_at <= at and not r.limited and (on is None or r.queue in on)
    ][:limit]  # fmt: skip


def started_events(owner: str, leased: list[Ready], queued: list[Candidate]) -> list[Event]:
    """The ``NodeStarted`` of what a transition leases: new attempts, then queued ones."""
    taking = [(r.node, r.item, r.attempt) for r in leased]
    taking += [(c.node, item_of(c.item), c.attempt) for c in queued]
    return [NodeStarted(node=node, attempt=attempt, worker=owner, item=item)
            for node, item, attempt in taking]  # fmt: skip


def leased_claims(
    run_id: str,
    owner: str,
    expires: float,
    started: Sequence[StoredEvent],
    origins: Sequence[tuple[str, float]],
) -> list[Claimed]:
    """The leases a transition took, from the ``NodeStarted`` events stored after its
    own; ``origins``: the queue and ready time of each, in the same order."""
    claimed: list[Claimed] = []
    for stored, (queue, ready_at) in zip(started, origins, strict=True):
        event = stored.event
        assert isinstance(event, NodeStarted)
        lease = Lease(run_id, event.node, event.item, event.attempt, owner, expires)
        claimed.append(Claimed(lease, stored, queue, ready_at))
    return claimed

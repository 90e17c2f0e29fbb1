"""Applying a ``Transition``: the one place where its parts become rows.

``_apply`` runs inside a write the caller opened (and, in a group commit, inside a
savepoint of its own), so a refused transition leaves nothing behind. It applies the
transition's typed writes (``keel.store.writes``) in the store's fixed order with one
``match`` in ``_write``: adding a kind of write is a class there and a case here. Every
event reaches the database through ``_append``, which refuses a run that moved on since
the transition was decided (``ConflictError``). ``wake`` collects what other processes
should be woken for once the write commits (``keel.store.wakeups``, ``Dialect.notify``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

from keel.engine.events import Event
from keel.engine.state import is_finished
from keel.errors import ConflictError, LeaseLostError, RunExistsError, StoreError
from keel.spec.model import WorkflowSpec
from keel.store.appending import leasable_now, leased_claims, link_events, started_events
from keel.store.blobs import column_value
from keel.store.boundary import store_boundary
from keel.store.chain import GENESIS, canonical_json
from keel.store.limits import Candidate, choose
from keel.store.records import Claimed, Ready, StoredEvent, item_column, ready_row
from keel.store.sqlstore.dialect import Cursor
from keel.store.sqlstore.free import SQLFree
from keel.store.sqlstore.reads import SQLReader
from keel.store.sqlstore.task_logs import append_lines
from keel.store.wakeups import Wakeup, WorkQueued, wakeups_of
from keel.store.writes import (
    WITH_EVENTS,
    ClearTimer,
    CloseWait,
    Committed,
    CountCircuit,
    CreateChild,
    CreateRun,
    Enqueue,
    Finish,
    Hold,
    KeepLogs,
    Notify,
    OpenWait,
    SetLate,
    SetStatus,
    SetTimer,
    Transition,
    Withdraw,
    Write,
    write_rank,
)


@store_boundary
class SQLWriter(SQLReader):
    """Writes of transitions, runs and events, inside a write the caller holds."""

    def _append(
        self,
        cur: Cursor,
        run_id: str,
        events: Sequence[Event],
        at: float,
        expected_seq: int | None = None,
        expected_head: str | None = None,
    ) -> list[StoredEvent]:
        """Append to a run this write holds (``Dialect.lock_runs``): every write of an
        event goes through here. A caller that knows the head it decided on (both
        ``expected_seq`` and ``expected_head``) costs no read: the new head is written
        only where the run still has that one, and nothing else is written when it
        has not; otherwise the head is read and checked first."""
        q, threshold = self.q, self.blob_threshold
        if expected_seq is None or expected_head is None or not events:
            head = cur.execute(q["select_head"], (run_id,)).fetchone()
            appended = link_events(run_id, head, events, at, expected_seq, expected_head,
                                   threshold)  # fmt: skip
            if appended.rows:
                cur.execute(
                    q["update_head"], (appended.last_seq, appended.head_hash, float(at), run_id)
                )
        else:
            appended = link_events(run_id, (expected_seq, expected_head), events, at, None,
                                   threshold=threshold)  # fmt: skip
            moved = cur.execute(
                q["advance_head"],
                (appended.last_seq, appended.head_hash, float(at), run_id, expected_seq,
                 expected_head),
            )  # fmt: skip
            if moved.rowcount != 1:  # says why: missing, or moved on (and raises)
                head = cur.execute(q["select_head"], (run_id,)).fetchone()
                link_events(run_id, head, events, at, expected_seq, expected_head)
                raise ConflictError(f"run {run_id} moved on while this change was decided")
        if appended.blobs:
            self._put_blobs(cur, appended.blobs, at)
        if appended.rows:
            self.dialect.insert(cur, "insert_event", appended.rows)
        return appended.stored

    def _put_blobs(self, cur: Cursor, blobs: dict[str, str], at: float) -> None:
        """Store these blobs (text by name) where absent: by name, so two writes
        storing the same ones take them in the same order."""
        rows = [(name, len(text.encode()), text, float(at)) for name, text in sorted(blobs.items())]
        self.dialect.insert(cur, "insert_blob", rows)

    def _column(self, cur: Cursor, value: Any, at: float) -> str:
        """A run's ``input`` or ``output`` column for ``value``: its canonical JSON, or
        the name of the blob holding it (``keel.store.blobs.column_value``)."""
        text, blobs = column_value(canonical_json(value), self.blob_threshold)
        if blobs:
            self._put_blobs(cur, blobs, at)
        return text

    def _save_spec(self, cur: Cursor, spec: WorkflowSpec, at: float) -> None:
        cur.execute(self.q["insert_spec"], (spec.version, spec.name, spec.model_dump_json(), at))

    def _insert_run(
        self,
        cur: Cursor,
        spec: WorkflowSpec,
        run_input: Any,
        first: Transition,
        origin: str | None,
        parent: tuple[str, str] | None = None,
        *,
        started_by: str | None = None,
    ) -> None:
        """Create the run row (and save its spec), held by this write from then on."""
        if spec.version not in self._stored_specs:
            self._save_spec(cur, spec, first.at)
        parent_run, parent_node = parent or (None, None)
        inserted = cur.execute(
            self.q["insert_run"],
            (first.run_id, spec.name, spec.version, "pending",
             self._column(cur, run_input, first.at),
             origin, first.at, first.at, GENESIS, parent_run, parent_node, started_by),
        )  # fmt: skip
        if inserted.rowcount != 1:
            raise RunExistsError(f"a run with id {first.run_id} exists already")
        self.dialect.lock_runs(cur, [first.run_id])

    def _apply(self, cur: Cursor, t: Transition, wake: set[Wakeup]) -> Committed:
        """Write one transition: the one place a ``Transition`` is applied. Its writes go
        in the store's order (``WRITE_ORDER``): those that free places and count circuits,
        then the events with the attempts they queue (and lease), then the rest."""
        writes = sorted(t.writes, key=write_rank)  # stable: the caller's order within a kind
        ranks = [write_rank(write) for write in writes]
        for write, rank in zip(writes, ranks, strict=True):
            if rank < WITH_EVENTS:
                self._write(cur, t, write, wake)
        stored, claimed, unleased = self._append_leasing(cur, t)
        for write, rank in zip(writes, ranks, strict=True):
            if rank > WITH_EVENTS:
                self._write(cur, t, write, wake)
        if self.dialect.notifies:
            wake |= wakeups_of(t, unleased)
        return Committed(t, stored, claimed=claimed)

    def _write(self, cur: Cursor, t: Transition, write: Write, wake: set[Wakeup]) -> None:
        """Apply one write of ``t``: a new kind of write is one more case here."""
        q = self.q
        match write:
            case Finish(lease=lease):
                deleted = cur.execute(
                    q["delete_held"],
                    (lease.run_id, lease.node, item_column(lease.item), lease.attempt,
                     lease.owner),
                )  # fmt: skip
                if deleted.rowcount != 1:
                    raise LeaseLostError(
                        f"run {lease.run_id}: {lease.node} attempt {lease.attempt} is no "
                        f"longer held by {lease.owner}"
                    )
                row = deleted.fetchone()  # (queue, limit key) where the dialect wakes others
                if row is not None and row[1] is not None:  # a place under a limit came free
                    wake.add(WorkQueued(row[0]))
            case Withdraw(node=node, item=item):
                cur.execute(q["delete_queued"], (t.run_id, node, item_column(item)))
            case CountCircuit(outcome=outcome) if outcome.ok:
                cur.execute(q["circuit_succeeded"], (outcome.name,))
            case CountCircuit(outcome=outcome):
                cur.execute(
                    q["circuit_failed"],
                    {"name": outcome.name, "threshold": outcome.failures,
                     "cooldown": outcome.cooldown, "at": t.at},
                )  # fmt: skip
            case Enqueue():
                pass  # with the events, which may lease it (``_append_leasing``)
            case SetTimer(timer=timer):  # a timer may be for another run (a child's end)
                # a retry by hand sets an ended run's status back after its timers (the
                # deadline it gives the run again): judged by the status it sets
                status = t.status if timer.run_id == t.run_id else None
                reopens = status is not None and not is_finished(status)
                cur.execute(
                    q["upsert_timer"],
                    {"run": timer.run_id, "key": timer.key, "due": timer.due_at,
                     "data": canonical_json(timer.data), "reopens": reopens},
                )  # fmt: skip
            case ClearTimer(key=key):
                cur.execute(q["delete_timer"], (t.run_id, key))
            case OpenWait(wait=wait):
                cur.execute(
                    q["upsert_wait"],
                    (t.run_id, wait.node, wait.waits_for, wait.since, wait.until,
                     canonical_json(wait.details)),
                )  # fmt: skip
            case CloseWait(node=node):
                cur.execute(q["delete_wait"], (t.run_id, node))
            case CreateChild() as child:
                row = cur.execute(q["select_origin"], (t.run_id,)).fetchone()
                try:
                    self._insert_run(cur, child.spec, child.input, child.first,
                                     row[0] if row else None,
                                     (child.parent_run, child.parent_node))  # fmt: skip
                except StoreError:  # another process started this child: the parent moved
                    raise ConflictError(
                        f"child run {child.first.run_id} of run {t.run_id} exists already"
                    ) from None
                self._apply(cur, child.first, wake)
            case CreateRun() as run:  # a fork: its id is new, so it cannot exist already
                self._insert_run(cur, run.spec, run.input, run.first, run.origin,
                                 started_by=run.started_by)  # fmt: skip
                self._apply(cur, run.first, wake)
            case Hold(held=held):  # paused: its queued attempts are out of every claim's reach
                cur.execute(q["hold_ready" if held else "release_ready"], (t.run_id,))
            case Notify(notification=note):
                cur.execute(
                    q["insert_outbox"],
                    (t.run_id, canonical_json(note.notifier), canonical_json(note.payload),
                     t.at, t.at),
                )  # fmt: skip
            case SetLate(late=late):
                cur.execute(q["update_late"], (late, float(t.at), t.run_id))
            case KeepLogs(lines=lines):
                append_lines(self.dialect, cur, lines)
            case SetStatus(status=status, output=output, reason=reason):
                stored = None if output is None else self._column(cur, output, t.at)
                ended = t.at if is_finished(status) else None  # the alerts' windows read it
                failed = status == "failed"  # why it failed, or cleared (a retry by hand)
                cur.execute(
                    q["update_status"],
                    (status, stored, reason, ended, write.failed_node if failed else None,
                     write.error_type if failed else None, float(t.at), t.run_id),
                )  # fmt: skip
                if ended is not None:  # an ended run's queue, timers and waits go with it
                    cur.execute(q["delete_run_ready"], (t.run_id,))
                    cur.execute(q["delete_run_timers"], (t.run_id,))
                    cur.execute(q["delete_run_waits"], (t.run_id,))
            case _:
                assert_never(write)

    def _append_leasing(
        self, cur: Cursor, t: Transition
    ) -> tuple[list[StoredEvent], list[Claimed], Sequence[Ready]]:
        """Append the transition's events and queue its new attempts; with a lease
        request, lease what it can to the worker in the same go (the ``NodeStarted`` of
        each after the events). Returns the events, the leases, and what stays queued."""
        q = self.q
        enqueue, lease = t.enqueued, t.lease
        leased: list[Ready] = []
        queued: list[Candidate] = []
        if lease is not None:
            # an attempt that needs a circuit or a limit goes through the queue, where
            # those are checked, rather than straight to the worker
            leased = leasable_now(enqueue, t.at, lease.queues, lease.limit)
            if len(leased) < lease.limit:
                free = SQLFree(self.dialect, cur, t.at, lease.limit - len(leased), [t.run_id],
                               lease.queues, lease.lease_for)  # fmt: skip
                queued = choose(free, t.at, free.limit, want_retry=False).taken
        unleased: Sequence[Ready] = enqueue
        claimed: list[Claimed] = []
        if lease is None or not (leased or queued):
            stored = self._append(cur, t.run_id, t.events, t.at, t.expected_seq, t.expected_head)
        else:  # the events, then the ``NodeStarted`` of what is leased, in one go
            owner, expires = lease.owner, t.at + lease.lease_for
            started = started_events(owner, leased, queued)
            stored = self._append(cur, t.run_id, [*t.events, *started], t.at, t.expected_seq,
                                  t.expected_head)  # fmt: skip
            if leased:
                rows = [ready_row(t.run_id, r, owner, expires) for r in leased]
                self.dialect.insert(cur, "insert_ready", rows)
            if queued:
                taking = [(owner, expires, t.run_id, c.node, c.item) for c in queued]
                cur.executemany(q["take_lease"], taking)
            chosen = {id(r) for r in leased}
            unleased = [r for r in enqueue if id(r) not in chosen]
            own = len(t.events)
            origins = [(r.queue, r.available_at) for r in leased]
            origins += [(c.queue, c.available_at) for c in queued]
            claimed = leased_claims(t.run_id, owner, expires, stored[own:], origins)
            stored = stored[:own]
        if unleased:
            rows = _last_per_place([ready_row(t.run_id, r) for r in unleased])
            self.dialect.insert(cur, "insert_ready", rows)
        return stored, claimed, unleased


def _last_per_place(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One row per place (run, node, item), the last: a row replaces the one queued
    there, and one statement may not write a place twice (PostgreSQL refuses)."""
    if len(rows) < 2:
        return rows
    return list({row[:3]: row for row in rows}.values())

"""Applying a ``Transition``: the one place where its parts become rows.

``_apply`` runs inside a write the caller opened (and, in a group commit, inside a
savepoint of its own): it checks the leases the transition finishes first, so a refused
transition has written nothing, then writes everything else in a fixed order. Every
event reaches the database through ``_append``, which refuses a run that moved on since
the transition was decided (``ConflictError``). ``notes`` collects what other processes
should be woken for once the write commits (``Dialect.notify``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keel.engine.events import Event
from keel.engine.state import is_finished
from keel.errors import ConflictError, LeaseLostError, StoreError
from keel.spec.model import WorkflowSpec
from keel.store.appending import leasable_now, leased_claims, link_events, started_events
from keel.store.boundary import store_boundary
from keel.store.chain import GENESIS, canonical_json
from keel.store.limits import Candidate, choose
from keel.store.records import (
    Claimed,
    Committed,
    Ready,
    StoredEvent,
    Transition,
    item_column,
    ready_row,
)
from keel.store.sqlstore.dialect import Cursor
from keel.store.sqlstore.free import SQLFree
from keel.store.sqlstore.reads import SQLReader


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
        event goes through here."""
        q = self.q
        head = cur.execute(q["select_head"], (run_id,)).fetchone()
        appended = link_events(run_id, head, events, at, expected_seq, expected_head)
        if appended.rows:
            cur.executemany(q["insert_event"], appended.rows)
            cur.execute(
                q["update_head"], (appended.last_seq, appended.head_hash, float(at), run_id)
            )
        return appended.stored

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
    ) -> None:
        """Create the run row (and save its spec), held by this write from then on."""
        self._save_spec(cur, spec, first.at)
        parent_run, parent_node = parent or (None, None)
        inserted = cur.execute(
            self.q["insert_run"],
            (first.run_id, spec.name, spec.version, "pending", canonical_json(run_input),
             origin, first.at, first.at, GENESIS, parent_run, parent_node),
        )  # fmt: skip
        if inserted.rowcount != 1:
            raise StoreError(f"a run with id {first.run_id} exists already")
        self.dialect.lock_runs(cur, [first.run_id])

    def _apply(self, cur: Cursor, t: Transition, notes: set[str]) -> Committed:
        """Write one transition: the one place a ``Transition`` is applied."""
        q = self.q
        # the lease check comes first, so a refused transition has written nothing
        for lease in t.done:
            deleted = cur.execute(
                q["delete_held"],
                (lease.run_id, lease.node, item_column(lease.item), lease.attempt, lease.owner),
            )
            if deleted.rowcount != 1:
                raise LeaseLostError(
                    f"run {lease.run_id}: {lease.node} attempt {lease.attempt} is no longer "
                    f"held by {lease.owner}"
                )
            row = deleted.fetchone()  # (queue, limit key) where the dialect wakes others
            if row is not None and row[1] is not None:  # a place under a limit came free
                notes.add(f"ready {row[0]} 0")
        for node, item in t.withdraw:
            cur.execute(q["delete_queued"], (t.run_id, node, item_column(item)))
        # counted before anything is leased: the failure that opens a circuit must not
        # hand out the next attempt that needs it
        for outcome in t.circuits:
            if outcome.ok:
                cur.execute(q["circuit_succeeded"], (outcome.name,))
            else:
                cur.execute(
                    q["circuit_failed"],
                    {"name": outcome.name, "threshold": outcome.failures,
                     "cooldown": outcome.cooldown, "at": t.at},
                )  # fmt: skip
        # an attempt that needs a circuit or a limit goes through the queue, where those
        # are checked, rather than straight to the worker
        leased = leasable_now(t.enqueue, t.at, t.lease_queues, t.lease_limit)
        queued: list[Candidate] = []
        if t.lease_to is not None and len(leased) < t.lease_limit:
            free = SQLFree(self.dialect, cur, t.at, t.lease_limit - len(leased), [t.run_id],
                           t.lease_queues, t.lease_for)  # fmt: skip
            queued = choose(free, t.at, free.limit, want_retry=False).taken
        unleased: Sequence[Ready] = t.enqueue
        claimed: list[Claimed] = []
        if t.lease_to is None or not (leased or queued):
            stored = self._append(cur, t.run_id, t.events, t.at, t.expected_seq, t.expected_head)
        else:  # the events, then the ``NodeStarted`` of what is leased, in one go
            owner, expires = t.lease_to, t.at + t.lease_for
            started = started_events(owner, leased, queued)
            stored = self._append(cur, t.run_id, [*t.events, *started], t.at, t.expected_seq,
                                  t.expected_head)  # fmt: skip
            if leased:
                rows = [ready_row(t.run_id, r, owner, expires) for r in leased]
                cur.executemany(q["insert_ready"], rows)
            if queued:
                taking = [(owner, expires, t.run_id, c.node, c.item) for c in queued]
                cur.executemany(q["take_lease"], taking)
            chosen = {id(r) for r in leased}
            unleased = [r for r in t.enqueue if id(r) not in chosen]
            own = len(t.events)
            stored, claimed = stored[:own], leased_claims(t.run_id, owner, expires, stored[own:])
        if unleased:
            cur.executemany(q["insert_ready"], [ready_row(t.run_id, r) for r in unleased])
            notes.update(f"ready {r.queue} {r.available_at!r}" for r in unleased)
        for timer in t.timers:  # a timer may be for another run (a child's end, its parent)
            cur.execute(
                q["upsert_timer"],
                {"run": timer.run_id, "key": timer.key, "due": timer.due_at,
                 "data": canonical_json(timer.data)},
            )  # fmt: skip
            notes.add(f"timer {timer.due_at!r}")
        for key in t.clear_timers:
            cur.execute(q["delete_timer"], (t.run_id, key))
        for wait in t.waits:
            cur.execute(
                q["upsert_wait"],
                (t.run_id, wait.node, wait.waits_for, wait.since, wait.until,
                 canonical_json(wait.details)),
            )  # fmt: skip
        for node in t.clear_waits:
            cur.execute(q["delete_wait"], (t.run_id, node))
        if t.children:
            row = cur.execute(q["select_origin"], (t.run_id,)).fetchone()
            origin = row[0] if row else None
            for child in t.children:
                try:
                    self._insert_run(cur, child.spec, child.input, child.first, origin,
                                     (child.parent_run, child.parent_node))  # fmt: skip
                except StoreError:  # another process started this child: the parent moved
                    raise ConflictError(
                        f"child run {child.first.run_id} of run {t.run_id} exists already"
                    ) from None
                self._apply(cur, child.first, notes)
        if t.hold is True:  # paused: the run's queued attempts are out of every claim's reach
            cur.execute(q["hold_ready"], (t.run_id,))
        elif t.hold is False:
            cur.execute(q["release_ready"], (t.run_id,))
            notes.add("ready * 0")
        for note in t.notify:
            cur.execute(
                q["insert_outbox"],
                (t.run_id, canonical_json(note.notifier), canonical_json(note.payload), t.at, t.at),
            )
            notes.add("outbox")
        if t.status is not None:
            output = None if t.output is None else canonical_json(t.output)
            cur.execute(q["update_status"], (t.status, output, t.reason, t.run_id))
            if is_finished(t.status):
                cur.execute(q["delete_run_ready"], (t.run_id,))
                cur.execute(q["delete_run_timers"], (t.run_id,))
                cur.execute(q["delete_run_waits"], (t.run_id,))
        return Committed(t, stored, claimed=claimed)

"""The store skeleton: every write of the ``Store`` protocol, written once over a
``Dialect`` (SQLite and PostgreSQL supply theirs).

- ``commit`` applies each transition atomically. One transition is the whole write; a
  group shares one write with a savepoint per transition, its runs locked first (in id
  order), so one refused transition (a conflict, a lost lease, a missing run, or a
  deadlock it lost) leaves nothing behind and never takes the others down with it.
- ``claim`` lets ``choose`` (``keel.store.limits``) pick free attempts, leases them run
  by run and records their ``NodeStarted``; it returns them best first. Where a write
  lock holds the whole database (``Dialect.peeks``) it first looks read-only, as most
  polls find nothing, unless the caller expects work (woken for it): then the look
  would only add a read to the claim.
- ``reclaim`` puts back attempts whose lease expired or whose owner died, skipping runs
  another writer holds (their leases are looked at next time).
- Whatever leaves work for other processes is noted and sent on commit (``notify``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from keel.engine.events import NodeReclaimed, NodeStarted
from keel.errors import ConflictError, LeaseLostError, RunNotFoundError
from keel.spec.model import WorkflowSpec
from keel.store.appending import BatchOrder
from keel.store.boundary import store_boundary
from keel.store.limits import Candidate, choose
from keel.store.presence import WorkerRecord, worker_row
from keel.store.records import Claimed, Claims, Lease, OutboxItem, StoredEvent, item_of
from keel.store.sqlstore.alerts import SQLAlerts
from keel.store.sqlstore.dialect import Cursor
from keel.store.sqlstore.free import SQLFree
from keel.store.sqlstore.gauges import SQLGauges
from keel.store.sqlstore.heads import SQLHeads
from keel.store.sqlstore.model_calls import SQLModelCalls
from keel.store.sqlstore.pruning import SQLPruning
from keel.store.sqlstore.run_lists import SQLRunLists
from keel.store.sqlstore.service import SQLService
from keel.store.sqlstore.summaries import SQLSummaries
from keel.store.sqlstore.sweeping import SQLBlobSweep
from keel.store.sqlstore.task_logs import SQLTaskLogs
from keel.store.wakeups import Wakeup, WorkQueued
from keel.store.writes import Committed, Transition

#: how the store refuses a transition (the caller decides again, or gives up)
REFUSALS = (ConflictError, LeaseLostError, RunNotFoundError)


@store_boundary
class SQLStore(
    SQLService, SQLRunLists, SQLGauges, SQLTaskLogs, SQLAlerts, SQLSummaries, SQLModelCalls,
    SQLPruning, SQLHeads, SQLBlobSweep,
):  # fmt: skip
    """``Store`` on a SQL database, through its ``Dialect``."""

    def close(self) -> None:
        self.dialect.close()

    def save_spec(self, spec: WorkflowSpec, at: float) -> None:
        with self.dialect.write() as cur:
            self._save_spec(cur, spec, at)
        self._stored_specs.add(spec.version)

    # --- transitions -------------------------------------------------------------------------

    def create_run(
        self,
        spec: WorkflowSpec,
        run_input: Any,
        first: Transition,
        *,
        origin: str | None = None,
        started_by: str | None = None,
    ) -> Committed:
        notes: set[Wakeup] = set()
        with self.dialect.write() as cur:
            self._insert_run(cur, spec, run_input, first, origin, started_by=started_by)
            committed = self._apply(cur, first, notes)
            self.dialect.notify(cur, notes)
        self._stored_specs.add(spec.version)  # committed: the next run needs not save it
        return committed

    def commit(self, transitions: Sequence[Transition]) -> list[Committed]:
        if not transitions:
            return []
        dialect = self.dialect
        if len(transitions) == 1:  # the whole write is this one transition
            (transition,) = transitions
            try:
                with dialect.write() as cur:
                    dialect.lock_runs(cur, [transition.run_id])
                    notes: set[Wakeup] = set()
                    committed = self._apply(cur, transition, notes)
                    dialect.notify(cur, notes)
            except REFUSALS as exc:
                return [Committed(transition, error=exc)]
            except dialect.retryable as exc:
                return [Committed(transition, error=_gave_way(transition, exc))]
            return [committed]
        results: list[Committed] = []
        notes = set()
        order = BatchOrder()
        with dialect.write() as cur:
            dialect.lock_runs(cur, sorted({t.run_id for t in transitions}))
            for transition in transitions:
                mine: set[Wakeup] = set()
                try:
                    order.admit(transition)
                    # a refused transition leaves nothing behind, not even the leases it
                    # released before the refusal was found
                    with dialect.savepoint(cur):
                        results.append(self._apply(cur, transition, mine))
                except REFUSALS as exc:
                    order.refused(transition)
                    results.append(Committed(transition, error=exc))
                except dialect.retryable as exc:
                    order.refused(transition)
                    results.append(Committed(transition, error=_gave_way(transition, exc)))
                else:
                    notes |= mine
            dialect.notify(cur, notes)
        return results

    # --- the ready queue and leases ---------------------------------------------------------

    def claim(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_for: float,
        *,
        run_id: str | None = None,
        run_ids: Sequence[str] | None = None,
        queues: Sequence[str] | None = None,
        expected: bool = False,
    ) -> list[Claimed]:
        claimed = Claims()
        if limit <= 0:
            return claimed
        if run_id is not None:
            run_ids = [run_id]
        dialect = self.dialect
        if dialect.peeks and not expected:  # a read takes no write lock, waits for none
            with dialect.read() as cur:
                peek = SQLFree(dialect, cur, now, 1, run_ids, queues, lease_for)
                if not peek.look((), ()):
                    claimed.retry_at = peek.retry_at()  # held back by rate limits only?
                    return claimed
        try:
            with dialect.write() as cur:
                free = SQLFree(dialect, cur, now, limit, run_ids, queues, lease_for)
                admission = choose(free, now, limit, want_retry=True)
                claimed.retry_at = admission.retry_at
                claimed += self._take(cur, admission.taken, owner, now, now + lease_for)
        except dialect.retryable as exc:  # nothing was taken; the next look tries again
            dialect.log.info("a claim gave way to another transaction: %s", exc)
            return Claims()
        return claimed

    def _take(
        self, cur: Cursor, taken: list[Candidate], owner: str, now: float, expires: float
    ) -> list[Claimed]:
        """Lease the chosen attempts run by run, those still free (one may have been
        taken between the look and the lock; its rate start then counts, harmlessly),
        and record their ``NodeStarted``; best first, as chosen."""
        by_run: dict[str, list[Candidate]] = {}
        for candidate in taken:
            by_run.setdefault(candidate.run_id, []).append(candidate)
        got: dict[tuple[str, str, int, int], Claimed] = {}
        for run_id, candidates in by_run.items():
            leased = self.dialect.take_leases(cur, run_id, candidates, owner, expires)
            started = [NodeStarted(node=c.node, attempt=c.attempt, worker=owner,
                                   item=item_of(c.item)) for c in leased]  # fmt: skip
            for c, event in zip(leased, self._append(cur, run_id, started, now), strict=True):
                lease = Lease(run_id, c.node, item_of(c.item), c.attempt, owner, expires)
                got[c.place] = Claimed(lease, event, c.queue, c.available_at)
        return [got[c.place] for c in taken if c.place in got]

    def renew(self, owner: str, now: float, lease_for: float) -> int:
        with self.dialect.write() as cur:
            # a probe holds its circuit half-open for as long as its lease lives
            cur.execute(self.q["renew_probes"], {"until": now + lease_for, "now": now,
                                                 "owner": owner})  # fmt: skip
            return cur.execute(self.q["renew_leases"], (now + lease_for, owner)).rowcount

    def reclaim(
        self, now: float, *, dead_owners: Sequence[str] = (), reason: str = ""
    ) -> list[StoredEvent]:
        q = self.q
        reclaimed: list[StoredEvent] = []
        with self.dialect.write() as cur:
            rows = [(*row, "lease expired") for row in cur.execute(q["select_lost"], (now,))]
            for owner in dead_owners:
                rows += [(*row, reason or "owner died")
                         for row in cur.execute(q["select_held_by"], (owner,))]  # fmt: skip
            if not rows:
                return reclaimed
            free_runs = self.dialect.lock_free_runs(cur, sorted({row[0] for row in rows}))
            seen: set[tuple[str, str, int]] = set()
            notes: set[Wakeup] = set()
            for run_id, node, item, attempt, owner, why in rows:
                if (run_id, node, item) in seen or run_id not in free_runs:
                    continue  # a run in a transition now: its leases are looked at next time
                seen.add((run_id, node, item))
                dropped = cur.execute(
                    q["drop_lease"], {"run": run_id, "node": node, "item": item, "owner": owner}
                )
                rows = dropped.fetchall()  # [(queue,)]: read to the end, so the update is done
                if not rows:
                    continue  # taken meanwhile by its owner's own commit
                notes.add(WorkQueued(rows[0][0]))  # the attempt is free for other workers
                event = NodeReclaimed(node=node, attempt=attempt, owner=owner, reason=why,
                                      item=item_of(item))  # fmt: skip
                reclaimed += self._append(cur, run_id, [event], now)
            self.dialect.notify(cur, notes)
        return reclaimed

    # --- the outbox of notifications -------------------------------------------------------

    def take_notifications(
        self, owner: str, now: float, limit: int, lease_for: float
    ) -> list[OutboxItem]:
        dialect = self.dialect
        if dialect.peeks:
            with dialect.read() as cur:
                if cur.execute(self.q["peek_outbox"], {"now": now}).fetchone() is None:
                    return []  # looked without the write lock: usually nothing to send
        params = {"owner": owner, "until": now + lease_for, "now": now, "limit": limit}
        with dialect.write() as cur:
            rows = cur.execute(self.q["take_outbox"], params).fetchall()
        rows.sort(key=lambda row: (row[5], row[0]))  # due first, then oldest
        return [
            OutboxItem(row_id, run_id, json.loads(notifier), json.loads(payload), deliveries)
            for row_id, run_id, notifier, payload, deliveries, _ in rows
        ]

    def finish_notification(
        self, item_id: int, now: float, *, error: str | None = None, retry_at: float | None = None
    ) -> None:
        with self.dialect.write() as cur:
            if error is None:
                cur.execute(self.q["outbox_delivered"], (now, item_id))
            else:
                cur.execute(self.q["outbox_failed"], (retry_at, error, item_id))

    # --- live workers (see keel.store.presence) -------------------------------------------
    # A table of their own, written only by workers: nothing else in the store reads it.

    def register_worker(self, worker: WorkerRecord) -> None:
        with self.dialect.write() as cur:
            cur.execute(self.q["upsert_worker"], worker_row(worker))

    def worker_seen(self, owner: str, at: float) -> bool:
        with self.dialect.write() as cur:
            return cur.execute(self.q["worker_seen"], (at, owner)).rowcount == 1

    def unregister_worker(self, owner: str) -> None:
        with self.dialect.write() as cur:
            cur.execute(self.q["delete_worker"], (owner,))

    def forget_workers(self, seen_before: float) -> int:
        with self.dialect.write() as cur:
            return cur.execute(self.q["forget_workers"], (seen_before,)).rowcount


def _gave_way(transition: Transition, exc: Exception) -> ConflictError:
    """A transition whose write lost a deadlock: refused, to be decided again."""
    return ConflictError(f"run {transition.run_id}: {exc}".strip())

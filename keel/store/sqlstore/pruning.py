"""Retention on a SQL database: the runs a prune may take, pruning them under their
tombstones, and reading tombstones back (``keel.store.tombstones`` says the rules).

A prune reads its candidates by the index of ended runs not pruned yet
(``runs_to_prune``), a page at a time after a position, so runs held back (a parent or
child still going) or refused are never read again by the same prune. ``prune_runs``
holds the runs (``Dialect.lock_runs``: their rows on PostgreSQL, the database on
SQLite), reads each again with what pruning it would remove, and prunes in one write
those its tombstone still describes: their rows deleted set-wise, a few statements per
batch whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from keel.store.boundary import store_boundary
from keel.store.chain import canonical_json
from keel.store.records import run_record
from keel.store.sqlstore.dialect import Cursor
from keel.store.sqlstore.reads import SQLReader
from keel.store.tombstones import (
    PruneCandidate,
    PruneCounts,
    StoredTombstone,
    Tombstoned,
    still_fits,
)

#: the position before every other (ended_at, id)
_START = (-1e300, "")
#: the rows of a run that a prune deletes, each by one statement for a whole batch
_DELETES = ("prune_events", "prune_task_logs", "prune_model_calls", "prune_ready",
            "prune_timers", "prune_waits", "prune_outbox")  # fmt: skip


def _kept_by(going_parent: str | None, going_child: str | None) -> str | None:
    if going_parent is not None:
        return f"its parent run {going_parent} is still going"
    if going_child is not None:
        return f"its child run {going_child} is still going"
    return None


@store_boundary
class SQLPruning(SQLReader):
    """``prune_candidates``, ``prune_runs``, ``tombstone`` and ``tombstones``."""

    def _candidates(self, cur: Cursor, rows: Sequence[Sequence[Any]]) -> list[PruneCandidate]:
        """Candidates from ``prune_candidates``' rows, with the counts of what pruning
        each removes (three grouped reads for all of them)."""
        if not rows:
            return []
        ids = [str(row[3]) for row in rows]
        params = {"runs": self.dialect.array(ids)}
        counted = {run_id: PruneCounts() for run_id in ids}
        for query, kind in (("prune_count_events", "events"), ("prune_count_logs", "log_lines"),
                            ("prune_count_calls", "model_calls")):  # fmt: skip
            for run_id, count, size in cur.execute(self.q[query], params):
                counted[run_id] += PruneCounts(**{kind: int(count)}, bytes=int(size))
        # a run's input or output may name a blob: the record holds the value
        blobs = self._column_blobs(cur, [row[3:] for row in rows])
        found = []
        for going_parent, going_child, own_bytes, *columns in rows:
            run = run_record(columns, blobs)
            counts = counted[run.id] + PruneCounts(bytes=int(own_bytes or 0))
            found.append(PruneCandidate(run, counts, _kept_by(going_parent, going_child)))
        return found

    def prune_candidates(
        self,
        ended_before: float,
        *,
        workflow: str | None = None,
        after: tuple[float, str] | None = None,
        limit: int = 500,
    ) -> list[PruneCandidate]:
        at, after_id = _START if after is None else after
        params = {"before": ended_before, "workflow": workflow, "after_at": float(at),
                  "after_id": after_id, "limit": limit}  # fmt: skip
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["prune_candidates"], params).fetchall()
            return self._candidates(cur, rows)

    def prune_runs(self, tombstones: Sequence[Tombstoned]) -> list[str]:
        if not tombstones:
            return []
        by_run = {t.run_id: t for t in tombstones}
        ids = sorted(by_run)
        with self.dialect.write() as cur:
            self.dialect.lock_runs(cur, ids)
            rows = cur.execute(self.q["prune_runs_again"],
                               {"runs": self.dialect.array(ids)}).fetchall()  # fmt: skip
            fitting = sorted(
                c.run.id
                for c in self._candidates(cur, rows)
                if c.kept_by is None and still_fits(by_run[c.run.id], c.run, c.counts)
            )
            if fitting:
                self._prune(cur, fitting, [by_run[run_id] for run_id in fitting])
        return fitting

    def _prune(self, cur: Cursor, run_ids: list[str], tombstones: list[Tombstoned]) -> None:
        """Remove the runs' rows and payloads and keep their tombstones, inside the
        write that holds them (one step, for tests that crash in its middle)."""
        runs = self.dialect.array(run_ids)
        for name in _DELETES:
            cur.execute(self.q[name], {"runs": runs})
        by_time: dict[float, list[str]] = {}
        for tombstone in tombstones:
            by_time.setdefault(float(tombstone.pruned_at), []).append(tombstone.run_id)
        for at, same in sorted(by_time.items()):
            cur.execute(self.q["prune_run_rows"], {"at": at, "runs": self.dialect.array(same)})
        rows = [(t.run_id, float(t.pruned_at), canonical_json(t.to_data())) for t in tombstones]
        self.dialect.insert(cur, "insert_tombstone", rows)

    def tombstone(self, run_id: str) -> StoredTombstone | None:
        with self.dialect.read() as cur:
            row = cur.execute(self.q["select_tombstone"], (run_id,)).fetchone()
        return None if row is None else StoredTombstone(row[0], float(row[1]), json.loads(row[2]))

    def tombstones(
        self, *, after: tuple[float, str] | None = None, limit: int = 1000
    ) -> list[StoredTombstone]:
        at, after_id = _START if after is None else after
        params = {"after_at": float(at), "after_id": after_id, "limit": limit}
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_tombstones"], params).fetchall()
        return [StoredTombstone(r[0], float(r[1]), json.loads(r[2])) for r in rows]

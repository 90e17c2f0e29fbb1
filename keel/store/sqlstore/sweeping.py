"""Removing the blobs that nothing names any more (``Store.sweep_blobs``): mark, then sweep.

A blob (``keel.store.blobs``) is named by stored events, those whose text starts with
``MARKER``, and by runs' ``input`` and ``output`` columns, which hold a blob's name in
place of a large value. Blobs are shared by content, so a prune (``prune_runs``) removes
events and clears columns but no blob: the same large value in a kept run is the same
row. The sweep reads every name still used (the mark) and deletes every other blob, in
one write:

- No reference can appear between the mark and the deletes. Every write that names a
  blob stores it in the same transaction (insert if absent: ``_put_blobs``), and the
  sweep first holds the blobs table against those writes (``Dialect.lock_blobs``): on
  PostgreSQL it waits for the writes that stored or found a blob to commit, and the
  next ones wait for the sweep; SQLite's write already holds the whole database. A
  writer naming an old blob thus either commits before the mark, which sees it, or
  stores the blob again after the sweep.
- The mark reads the rows that name blobs and no other, by partial indexes of them
  (``events_naming_blobs``, ``runs_input_blobs``, ``runs_output_blobs``; SQLite
  migration 0021, PostgreSQL 0015): its cost follows those rows, not the histories.
  Events are read a page at a time (``PAGE``) after a position.

``blobs_to_sweep`` reads the same without writing, leaving out what given runs name: the
blobs a prune of them would leave unnamed (what ``keel prune --dry-run`` reports).
"""

from __future__ import annotations

from collections.abc import Collection

from keel.store.blobs import column_name, names_in
from keel.store.boundary import store_boundary
from keel.store.sqlstore.dialect import Cursor
from keel.store.sqlstore.reads import SQLReader

#: events naming blobs read per query of the mark
PAGE = 500
#: blobs deleted per statement
DELETE_MOST = 500


@store_boundary
class SQLBlobSweep(SQLReader):
    """``sweep_blobs`` and ``blobs_to_sweep``."""

    def sweep_blobs(self) -> tuple[int, int]:
        with self.dialect.write() as cur:
            self.dialect.lock_blobs(cur)
            unnamed = self._unnamed(cur, frozenset())
            names = sorted(unnamed)
            for start in range(0, len(names), DELETE_MOST):
                chunk = self.dialect.array(names[start : start + DELETE_MOST])
                cur.execute(self.q["delete_blobs"], {"names": chunk})
        return len(unnamed), sum(unnamed.values())

    def blobs_to_sweep(self, ignoring: Collection[str] = ()) -> tuple[int, int]:
        with self.dialect.read() as cur:
            unnamed = self._unnamed(cur, frozenset(ignoring))
        return len(unnamed), sum(unnamed.values())

    def _unnamed(self, cur: Cursor, ignoring: frozenset[str]) -> dict[str, int]:
        """The blobs no event and no run but those of ``ignoring`` names: size by name."""
        named = self._named(cur, ignoring)
        rows = cur.execute(self.q["select_blob_sizes"])
        return {str(name): int(size) for name, size in rows if name not in named}

    def _named(self, cur: Cursor, ignoring: frozenset[str]) -> set[str]:
        """The mark: every blob named by a run's column or an event, but those of
        the runs ``ignoring``."""
        named: set[str] = set()
        for run_id, text in cur.execute(self.q["blob_naming_runs"]):
            name = column_name(text)
            if name is not None and run_id not in ignoring:
                named.add(name)
        after: tuple[str, int] = ("", 0)
        while True:
            params = {"after_run": after[0], "after_seq": after[1], "limit": PAGE}
            rows = cur.execute(self.q["blob_naming_events"], params).fetchall()
            named |= names_in(data for run_id, _, data in rows if run_id not in ignoring)
            if len(rows) < PAGE:
                return named
            after = (str(rows[-1][0]), int(rows[-1][1]))

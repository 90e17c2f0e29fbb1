"""The task logs' table: lines an attempt's task logged, numbered per run.

Lines are appended only while their run is held by the write (``Dialect.lock_runs``:
its row on PostgreSQL, the whole database on SQLite), numbered after the run's last
line, so the numbers of a run follow the order of the commits that wrote them: a reader
paging by ``seq`` never misses a line committed after its last page. With an attempt's
outcome they go in as a ``KeepLogs`` write of its transition (``append_lines``); while
the attempt runs, with ``keep_task_logs``.
"""

from __future__ import annotations

from collections.abc import Sequence

from keel.store.boundary import store_boundary
from keel.store.sqlstore.dialect import Cursor, Dialect
from keel.store.sqlstore.reads import SQLReader
from keel.store.task_logs import AttemptLines, TaskLogLine, task_log_of, task_log_rows


def append_lines(dialect: Dialect, cur: Cursor, lines: AttemptLines) -> None:
    """Append an attempt's lines to its run's, inside a write that holds the run."""
    if not lines.lines:
        return
    row = cur.execute(dialect.queries["last_task_log"], (lines.run_id,)).fetchone()
    last = int(row[0]) if row is not None and row[0] is not None else 0
    dialect.insert(cur, "insert_task_log", task_log_rows(last + 1, lines))


@store_boundary
class SQLTaskLogs(SQLReader):
    """Writing lines of running attempts, and reading a run's lines back."""

    def keep_task_logs(self, batches: Sequence[AttemptLines]) -> None:
        batches = [batch for batch in batches if batch.lines]
        if not batches:
            return
        with self.dialect.write() as cur:
            self.dialect.lock_runs(cur, sorted({batch.run_id for batch in batches}))
            for batch in batches:
                append_lines(self.dialect, cur, batch)

    def task_logs(
        self,
        run_id: str,
        *,
        node: str | None = None,
        attempt: int | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[TaskLogLine]:
        params = {"run": run_id, "node": node, "attempt": attempt, "after": after,
                  "limit": limit}  # fmt: skip
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_task_logs"], params).fetchall()
        return [task_log_of(row) for row in rows]

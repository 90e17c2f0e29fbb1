"""Runs summed up in groups (``keel.store.summaries``) on a SQL database: each one
grouped named query, read-only."""

from __future__ import annotations

from keel.store.boundary import store_boundary
from keel.store.sqlstore.reads import SQLReader
from keel.store.summaries import FailureGroup, Throughput, failure_group_of, throughput_of


@store_boundary
class SQLSummaries(SQLReader):
    """Throughput and failure groups, through the ``Dialect``'s named queries."""

    def throughput(self, since: float, step: float, steps: int) -> Throughput:
        params = {"since": since, "step": step, "until": since + step * steps}
        with self.dialect.read() as cur:
            started = cur.execute(self.q["runs_started_per_step"], params).fetchall()
            ended = cur.execute(self.q["runs_ended_per_step"], params).fetchall()
        return throughput_of(since, step, steps, started, ended)

    def failure_groups(
        self, *, created_after: float | None = None, limit: int = 100
    ) -> list[FailureGroup]:
        params = {"since": created_after, "limit": limit}
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["failure_groups"], params).fetchall()
        return [failure_group_of(row) for row in rows]

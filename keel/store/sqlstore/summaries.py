"""Runs summed up in groups (``keel.store.summaries``) on a SQL database, read-only: the
throughput with two named queries, the failure groups over ``runs_where``, the one
``WHERE`` builder of ``list_runs`` and ``count_runs``, so a group counts exactly the
runs its filtered list holds."""

from __future__ import annotations

from keel.store.boundary import store_boundary
from keel.store.sqlstore.reads import SQLReader
from keel.store.sqlstore.run_lists import runs_where
from keel.store.summaries import FailureGroup, Throughput, failure_group_of, throughput_of


@store_boundary
class SQLSummaries(SQLReader):
    """Throughput and failure groups, through the ``Dialect``."""

    def throughput(self, since: float, step: float, steps: int) -> Throughput:
        params = {"since": since, "step": step, "until": since + step * steps}
        with self.dialect.read() as cur:
            started = cur.execute(self.q["runs_started_per_step"], params).fetchall()
            ended = cur.execute(self.q["runs_ended_per_step"], params).fetchall()
        return throughput_of(since, step, steps, started, ended)

    def failure_groups(
        self, *, created_after: float | None = None, limit: int = 100
    ) -> list[FailureGroup]:
        param = self.dialect.param
        where, params = runs_where(
            param, status="failed", workflow=None, parent=None, version=None,
            started_by=None, created_after=created_after, created_before=None,
            ended_after=None, ended_before=None, late=None, error_type=None, node=None,
        )  # fmt: skip
        params["limit"] = limit
        # grouped as the failed runs' index (error_type, failed_node, created_at) is
        query = (f"SELECT error_type, failed_node, count(*) AS runs, max(created_at) AS newest "
                 f"FROM runs WHERE {' AND '.join(where)} GROUP BY error_type, failed_node "
                 f"ORDER BY runs DESC, newest DESC LIMIT {param('limit')}")  # fmt: skip
        with self.dialect.read() as cur:
            rows = cur.execute(query, params).fetchall()
        return [failure_group_of(row) for row in rows]

"""Runs read as lists: a page of them (``list_runs``), how many by status
(``count_runs``), and those written since a position (``runs_changed``, the change feed).

``list_runs`` and ``count_runs`` take the same filters and build their ``WHERE`` with the
one function ``runs_where``, so a count never disagrees with the listing it sums up. Each
filter is written as the index that serves it has it (a column compared alone, the
partial indexes' own terms), so every combination reads an index rather than the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from keel.store.boundary import store_boundary
from keel.store.records import RunChange, RunRecord, run_change_of, run_record
from keel.store.sqlstore.reads import SQLReader

#: hex digits of a version (a SHA-256)
VERSION_LENGTH = 64


def runs_where(
    param: Callable[[str], str],
    *,
    status: str | None,
    workflow: str | None,
    parent: str | None,
    version: str | None,
    started_by: str | None,
    created_after: float | None,
    created_before: float | None,
    late: bool | None,
    error_type: str | None,
    node: str | None,
) -> tuple[list[str], dict[str, Any]]:
    """The terms (joined with ``AND``) and parameters that select the runs every given
    filter holds for (``Store.list_runs`` says what each means); ``param`` writes a
    parameter's placeholder in the dialect. Every filter is a required keyword, so a new
    one cannot reach the listing without reaching the count."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if version is not None and len(version) < VERSION_LENGTH:  # a prefix of versions
        where.append(f"spec_version >= {param('low')} AND spec_version < {param('high')}")
        params["low"], params["high"] = version, version + "g"  # past every hex digit
        version = None
    failed = error_type is not None or node is not None  # only a failed run has them
    if failed and status == "failed":
        status = None  # said as the partial indexes of failed runs have it, below
    equal = (("parent_run", parent), ("status", status), ("workflow", workflow),
             ("spec_version", version), ("started_by", started_by),
             ("error_type", error_type), ("failed_node", node))  # fmt: skip
    for column, value in equal:
        if value is not None:  # each filter alone, so the index on its column serves
            where.append(f"{column} = {param(column)}")
            params[column] = value
    if failed:  # written as the partial indexes of failed runs have it
        where.append("status = 'failed'")
    if late is not None:  # written as the partial index of late runs has it
        where.append("late" if late else "NOT late")
    if created_after is not None:
        where.append(f"created_at >= {param('created_after')}")
        params["created_after"] = created_after
    if created_before is not None:
        where.append(f"created_at < {param('created_before')}")
        params["created_before"] = created_before
    return where, params


def _clause(where: list[str]) -> str:
    return f"WHERE {' AND '.join(where)}" if where else ""


@store_boundary
class SQLRunLists(SQLReader):
    """Lists, counts and the change feed of runs, on a SQL database."""

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        parent: str | None = None,
        limit: int = 50,
        version: str | None = None,
        started_by: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        cursor: tuple[float, str] | None = None,
        late: bool | None = None,
        error_type: str | None = None,
        node: str | None = None,
    ) -> list[RunRecord]:
        param = self.dialect.param
        where, params = runs_where(
            param, status=status, workflow=workflow, parent=parent, version=version,
            started_by=started_by, created_after=created_after,
            created_before=created_before, late=late, error_type=error_type, node=node,
        )  # fmt: skip
        params["limit"] = limit
        if cursor is not None:  # the page after the run ``cursor`` names, in the same order
            at, after = param("cursor_at"), param("cursor_id")
            where.append(f"(created_at < {at} OR (created_at = {at} AND id > {after}))")
            params["cursor_at"], params["cursor_id"] = cursor
        base = re.split(r"\s+FROM runs", self.q["select_run"])[0]
        query = (f"{base} FROM runs {_clause(where)} ORDER BY created_at DESC, id "
                 f"LIMIT {param('limit')}")  # fmt: skip
        with self.dialect.read() as cur:
            rows = cur.execute(query, params).fetchall()
        return [run_record(row) for row in rows]

    def count_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        parent: str | None = None,
        version: str | None = None,
        started_by: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        late: bool | None = None,
        error_type: str | None = None,
        node: str | None = None,
    ) -> dict[str, int]:
        where, params = runs_where(
            self.dialect.param, status=status, workflow=workflow, parent=parent,
            version=version, started_by=started_by, created_after=created_after,
            created_before=created_before, late=late, error_type=error_type, node=node,
        )  # fmt: skip
        # with a filter, grouped by an expression: SQLite's planner (no statistics) would
        # otherwise read every run through runs_by_status, for its order, rather than
        # the filter's index (a count of late runs: 50 ms instead of 3 at 100,000 runs);
        # without one, the status index alone is the cheapest read
        group = "status || ''" if where else "status"
        query = f"SELECT {group}, count(*) FROM runs {_clause(where)} GROUP BY 1"
        with self.dialect.read() as cur:
            rows = cur.execute(query, params).fetchall()
        return {status: int(count) for status, count in sorted(rows)}

    def runs_changed(self, after: tuple[float, str] | None, limit: int) -> list[RunChange]:
        with self.dialect.read() as cur:
            if after is None:
                rows = cur.execute(self.q["runs_changed_newest"]).fetchall()
            else:
                at, run_id = after
                params = {"at": float(at), "id": run_id, "limit": limit}
                rows = cur.execute(self.q["runs_changed"], params).fetchall()
        return [run_change_of(row) for row in rows]

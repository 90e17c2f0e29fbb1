"""Runs read as lists: a page of them (``list_runs``), how many by status
(``count_runs``), and those written since a position (``runs_changed``, the change feed).

``list_runs`` and ``count_runs`` take the same filters and build their ``WHERE`` with the
one function ``runs_where``, so a count never disagrees with the listing it sums up. Each
filter is written as the index that serves it has it (a column compared alone, the
partial indexes' own terms), so every combination reads an index rather than the table.
A version's first digits are first read as the stored versions they begin (a few), so
the index of runs by version gives them in order, rather than every match sorted.

``quiet_runs`` (where the dashboard looks for stuck runs) reads the runs that should
move on by themselves through the index of runs by status, and sorts them by the time
their row last changed: not the runs that ended, which are most of them. An index of
their own would cost every commit of a running run one more write.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from keel.store.boundary import store_boundary
from keel.store.records import RunChange, RunRecord, run_change_of, run_record
from keel.store.sqlstore.dialect import Cursor
from keel.store.sqlstore.reads import SQLReader

#: hex digits of a version (a SHA-256)
VERSION_LENGTH = 64
#: the most stored versions a version's first digits are read as (more: compared as a
#: range of versions, every match read and sorted)
PREFIX_VERSIONS = 20

#: a version given (whole, or its first digits), or the stored versions it begins
Version = str | tuple[str, ...]


def _prefix_range(version: str) -> dict[str, Any]:
    return {"low": version, "high": version + "g"}  # "g": past every hex digit


def runs_where(
    param: Callable[[str], str],
    *,
    status: str | None,
    workflow: str | None,
    parent: str | None,
    version: Version | None,
    started_by: str | None,
    created_after: float | None,
    created_before: float | None,
    ended_after: float | None,
    ended_before: float | None,
    late: bool | None,
    error_type: str | None,
    node: str | None,
    by_end: bool = False,
) -> tuple[list[str], dict[str, Any]]:
    """The terms (joined with ``AND``) and parameters that select the runs every given
    filter holds for (``Store.list_runs`` says what each means); ``param`` writes a
    parameter's placeholder in the dialect. Every filter is a required keyword, so a new
    one cannot reach the listing without reaching the count. ``version``: a version, its
    first digits, or the stored versions those begin (``SQLRunLists._versions``).

    ``by_end``: the runs are read by the index of their end time (``runs_ended``: a
    count of the runs that ended in a window reads that window), so the status,
    workflow, version and starter are written as no index serves them (``|| ''``);
    SQLite's planner, without statistics, would read every run of the workflow or
    status rather than the window (a count of a day's failed runs: 60 ms instead of 1
    at 100,000 runs). The selection is the same either way."""
    where: list[str] = []
    params: dict[str, Any] = {}
    unindexed = {"status", "workflow", "spec_version", "started_by"} if by_end else set()

    def col(column: str) -> str:
        return f"{column} || ''" if column in unindexed else column

    if isinstance(version, tuple):  # the versions a prefix begins
        if len(version) != 1:  # (one is compared alone, below: its index is in order)
            names = [f"version_{n}" for n in range(len(version))]
            places = ", ".join(param(name) for name in names) or "NULL"  # none: no run
            where.append(f"{col('spec_version')} IN ({places})")
            params.update(zip(names, version, strict=True))
            version = None
        else:
            version = version[0]
    elif version is not None and len(version) < VERSION_LENGTH:  # too many versions
        low, high = param("low"), param("high")
        where.append(f"{col('spec_version')} >= {low} AND {col('spec_version')} < {high}")
        params.update(_prefix_range(version))
        version = None
    failed = error_type is not None or node is not None  # only a failed run has them
    if failed and status == "failed":
        status = None  # said as the partial indexes of failed runs have it, below
    equal = (("parent_run", parent), ("status", status), ("workflow", workflow),
             ("spec_version", version), ("started_by", started_by),
             ("error_type", error_type), ("failed_node", node))  # fmt: skip
    for column, value in equal:
        if value is not None:  # each filter alone, so the index on its column serves
            where.append(f"{col(column)} = {param(column)}")
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
    if ended_after is not None:  # (a run not ended has no ended_at: never selected)
        where.append(f"ended_at >= {param('ended_after')}")
        params["ended_after"] = ended_after
    if ended_before is not None:
        where.append(f"ended_at < {param('ended_before')}")
        params["ended_before"] = ended_before
    return where, params


def _clause(where: list[str]) -> str:
    return f"WHERE {' AND '.join(where)}" if where else ""


@store_boundary
class SQLRunLists(SQLReader):
    """Lists, counts and the change feed of runs, on a SQL database."""

    def _versions(self, cur: Cursor, version: str | None) -> Version | None:
        """A version's first digits as the stored versions they begin, when there are
        at most ``PREFIX_VERSIONS`` (else the digits, compared as a range); a whole
        version, or None, as given."""
        if version is None or len(version) >= VERSION_LENGTH:
            return version
        params = {**_prefix_range(version), "limit": PREFIX_VERSIONS + 1}
        found = tuple(row[0] for row in cur.execute(self.q["select_versions_from"], params))
        return version if len(found) > PREFIX_VERSIONS else found

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
        ended_after: float | None = None,
        ended_before: float | None = None,
    ) -> list[RunRecord]:
        param = self.dialect.param
        with self.dialect.read() as cur:
            where, params = runs_where(
                param, status=status, workflow=workflow, parent=parent,
                version=self._versions(cur, version), started_by=started_by,
                created_after=created_after, created_before=created_before,
                ended_after=ended_after, ended_before=ended_before, late=late,
                error_type=error_type, node=node,
            )  # fmt: skip
            params["limit"] = limit
            if cursor is not None:  # the page after the run ``cursor`` names, in the same order
                at, after = param("cursor_at"), param("cursor_id")
                where.append(f"(created_at < {at} OR (created_at = {at} AND id > {after}))")
                params["cursor_at"], params["cursor_id"] = cursor
            query = (f"{self._columns()} FROM runs {_clause(where)} "
                     f"ORDER BY created_at DESC, id LIMIT {param('limit')}")  # fmt: skip
            rows = cur.execute(query, params).fetchall()
            blobs = self._column_blobs(cur, rows)
        return [run_record(row, blobs) for row in rows]

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
        ended_after: float | None = None,
        ended_before: float | None = None,
    ) -> dict[str, int]:
        with self.dialect.read() as cur:
            where, params = runs_where(
                self.dialect.param, status=status, workflow=workflow, parent=parent,
                version=self._versions(cur, version), started_by=started_by,
                created_after=created_after, created_before=created_before,
                ended_after=ended_after, ended_before=ended_before, late=late,
                error_type=error_type, node=node,
                by_end=ended_after is not None or ended_before is not None,
            )  # fmt: skip
            # with a filter, grouped by an expression: SQLite's planner (no statistics)
            # would otherwise read every run through runs_by_status, for its order, rather
            # than the filter's index (a count of late runs: 50 ms instead of 3 at 100,000
            # runs); without one, the status index alone is the cheapest read
            group = "status || ''" if where else "status"
            query = f"SELECT {group}, count(*) FROM runs {_clause(where)} GROUP BY 1"
            rows = cur.execute(query, params).fetchall()
        return {status: int(count) for status, count in sorted(rows)}

    def quiet_runs(self, before: float, limit: int) -> list[RunRecord]:
        with self.dialect.read() as cur:
            params = {"before": before, "limit": limit}
            rows = cur.execute(self.q["select_quiet_runs"], params).fetchall()
            blobs = self._column_blobs(cur, rows)
        return [run_record(row, blobs) for row in rows]

    def _columns(self) -> str:
        """``SELECT`` and the columns of a run, as ``select_run`` has them (``run_record``)."""
        return re.split(r"\s+FROM runs", self.q["select_run"])[0]

    def runs_changed(self, after: tuple[float, str] | None, limit: int) -> list[RunChange]:
        with self.dialect.read() as cur:
            if after is None:
                rows = cur.execute(self.q["runs_changed_newest"]).fetchall()
            else:
                at, run_id = after
                params = {"at": float(at), "id": run_id, "limit": limit}
                rows = cur.execute(self.q["runs_changed"], params).fetchall()
        return [run_change_of(row) for row in rows]

"""The ``sql`` built-in step: one parameterised statement on a connection the worker's
``keel.toml`` names (``keel.steps.sql_config``), PostgreSQL or SQLite.

The query's ``:name`` parameters take their values from ``params`` (templates, filled
here); the driver binds them, so a value is data whatever it holds. The output is
``{"rows": [{column: value}], "row_count", "columns"}``: for a statement that gives no
rows, ``row_count`` is the number of rows it changed. One transaction per attempt,
committed on success and rolled back on any failure; errors say whether another attempt
may succeed (``keel.steps.sql_errors``). The step's timeout (``DEFAULT_TIMEOUT`` without
one) bounds the statement.
"""

from __future__ import annotations

from typing import Any

from keel.authoring.tasks import task
from keel.runtime.execution.context import StepContext
from keel.spec.step_nodes import SqlNode
from keel.steps.filling import filled, step_node, step_timeout
from keel.steps.sql_config import connection, target
from keel.steps.sql_postgres import run_postgres
from keel.steps.sql_query import prepared
from keel.steps.sql_sqlite import run_sqlite

#: seconds a statement may run when the step has no timeout: the query is the spec's,
#: and one that never ends (a recursive CTE) would hold a worker's thread for good
DEFAULT_TIMEOUT = 300.0


@task
def sql_step(step: dict[str, Any], values: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Run the step's statement (see the module)."""
    node = step_node(SqlNode, step)
    timeout = step_timeout(step) or DEFAULT_TIMEOUT
    params: dict[str, Any] = filled(node, values).get("params") or {}
    place = target(connection(node.connection))
    query = prepared(node.query, place.dialect, params)
    where = f"sql connection {node.connection!r} ({place.dialect})"
    if place.dialect == "postgresql":
        return run_postgres(place.address, where, query, node.max_rows, timeout,
                            secret_url=place.secret)  # fmt: skip
    if not place.secret:
        where = f"sql connection {node.connection!r} (SQLite file {place.address})"
    return run_sqlite(place.address, where, query, node.max_rows, timeout)

"""Run one ``sql`` step's statement on PostgreSQL with psycopg 3 (``keelflow[postgres]``).

One connection per attempt, closed after it; one transaction: committed when the
statement succeeded and its rows fit, rolled back otherwise. The step's timeout is the
transaction's ``statement_timeout`` (``set_config(..., true)``: this transaction only)
and bounds the connect too. psycopg binds the values on the server (the extended
protocol): they never become SQL text.

A statement that gives rows is read a row at a time (``Cursor.stream``) and at most
``max_rows + 1`` are taken, holding at most ``MAX_RESULT_BYTES``: a query that would
give millions is stopped, not fetched (a single value is whole when read: PostgreSQL
bounds it at 1 GB).
Which statements give rows is read from their words (``keel.spec.sql_text.statement``);
one read wrongly as giving none is run with ``execute`` and its rows still counted.
"""

from __future__ import annotations

import math
from typing import Any

from keel.steps.sql_errors import (
    SqlDriverMissingError,
    SqlStatementError,
    SqlTemporaryError,
    SqlUnavailableError,
)
from keel.steps.sql_query import Prepared
from keel.steps.sql_values import postgres_param, step_output, taken_rows

#: seconds to wait for a connection when the step has no timeout
CONNECT_TIMEOUT = 10
#: SQLSTATE classes and codes another attempt may get past: connection exception,
#: transaction rollback (serialization, deadlock), insufficient resources, operator
#: intervention (a cancelled statement: the timeout; a shutdown), lock not available
_TEMPORARY = ("08", "40", "53", "57", "55P03")


def run_postgres(
    url: str,
    where: str,
    query: Prepared,
    max_rows: int,
    timeout: float | None,
    *,
    secret_url: bool = False,
) -> dict[str, Any]:
    """Run ``query`` on the database at ``url``; ``where`` names the connection in errors.
    With ``secret_url``, a failure to connect is not quoted: libpq's message names the
    host, port and user, parts of a URL the operator keeps secret."""
    try:
        import psycopg
    except ImportError:
        raise SqlDriverMissingError(
            f'{where}: PostgreSQL needs psycopg on the worker: pip install "keelflow[postgres]"'
        ) from None
    connect_timeout = CONNECT_TIMEOUT
    if timeout is not None:  # libpq waits at least 2 s
        connect_timeout = max(2, min(CONNECT_TIMEOUT, math.ceil(timeout)))
    try:
        conn = psycopg.connect(
            url, connect_timeout=connect_timeout, application_name="keel sql step"
        )
    except psycopg.Error as exc:
        said = _said(exc) if not secret_url else (
            f"{type(exc).__name__} (the driver's message is left out: it quotes parts of "
            "the URL, which is a secret)")  # fmt: skip
        if isinstance(exc, psycopg.OperationalError):  # refused, timed out, login failed
            raise SqlUnavailableError(f"{where}: cannot connect: {said}") from None
        raise SqlStatementError(f"{where}: cannot connect: {said}") from None  # a bad URL
    try:
        with conn:  # commits when the block ends normally, rolls back when it raises
            return _run(conn, where, query, max_rows, timeout)
    except psycopg.Error as exc:
        raise _failure(exc, where) from None
    finally:
        conn.close()


def _run(
    conn: Any, where: str, query: Prepared, max_rows: int, timeout: float | None
) -> dict[str, Any]:
    import psycopg

    values = {name: postgres_param(value) for name, value in query.values.items()}
    with conn.cursor() as cur:
        if timeout is not None:
            milliseconds = max(1, math.ceil(timeout * 1000))
            cur.execute("SELECT set_config('statement_timeout', %s, true)", (f"{milliseconds}ms",))
        if query.statement.gives_rows:
            stream = cur.stream(query.text, values)
            try:
                rows = taken_rows(where, stream, max_rows)
            except psycopg.ProgrammingError as exc:
                if exc.sqlstate:  # the server's: a missing table, a type error...
                    raise
                # psycopg's own: the statement gave no rows after all (refused, rolled back)
                raise SqlStatementError(
                    f"{where}: {exc}; keel read the statement as a query that gives rows"
                ) from None
            finally:
                stream.close()  # an unfinished stream cancels the rest of the query
            columns = [column.name for column in cur.description or ()]
            return step_output(where, columns, rows, max_rows)
        cur.execute(query.text, values)
        if cur.description is None:
            return {"rows": [], "row_count": max(cur.rowcount, 0), "columns": []}
        columns = [column.name for column in cur.description]
        rows = taken_rows(where, cur, max_rows)
        return step_output(where, columns, rows, max_rows)


def _failure(exc: Exception, where: str) -> Exception:
    import psycopg

    state = getattr(exc, "sqlstate", None) or ""
    if state == "57014":
        return SqlTemporaryError(f"{where}: the statement ran past the step's timeout and was "
                                 f"cancelled ({_said(exc)})")  # fmt: skip
    if state.startswith(_TEMPORARY):
        return SqlTemporaryError(f"{where}: {_said(exc)} (SQLSTATE {state})")
    if not state and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return SqlUnavailableError(f"{where}: the connection failed: {_said(exc)}")
    suffix = f" (SQLSTATE {state})" if state else ""
    return SqlStatementError(f"{where}: {_said(exc)}{suffix}")


def _said(exc: Exception) -> str:
    """The database's message, its lines kept (PostgreSQL points at the error with them)."""
    return str(exc).strip() or type(exc).__name__

"""Run one ``sql`` step's statement on a SQLite file (the standard library's ``sqlite3``).

The file must exist (it is opened ``mode=rw``: a typo in a path fails instead of making
an empty database). One connection per attempt, one explicit transaction: committed
when the statement succeeded and its rows fit, rolled back otherwise. The step's timeout
bounds both the wait for another writer's lock (``timeout``) and the statement itself
(a progress handler interrupts it past the deadline). Rows are fetched ``max_rows + 1``
at most: SQLite steps through a result as it is read.

Invariant: the statement reaches the connection's file only: no database can be
attached (``ATTACH``; ``VACUUM INTO`` cannot run in a transaction), so a query cannot
name another file.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from keel.steps.sql_errors import (
    SqlStatementError,
    SqlTemporaryError,
    SqlUnavailableError,
)
from keel.steps.sql_query import Prepared
from keel.steps.sql_values import MAX_RESULT_BYTES, sqlite_param, step_output, taken_rows

#: seconds to wait for another writer's lock when the step has no timeout
BUSY_TIMEOUT = 5.0
#: SQLite virtual machine instructions between two looks at the clock
_PROGRESS_STEPS = 10_000
#: primary result codes another attempt may get past: busy, locked, interrupted (the
#: timeout), I/O error, out of memory, disk full, cannot open, lock protocol
_TEMPORARY = {5, 6, 9, 10, 7, 13, 14, 15}
_INTERRUPTED = 9


def run_sqlite(
    path: str, where: str, query: Prepared, max_rows: int, timeout: float | None
) -> dict[str, Any]:
    """Run ``query`` on the SQLite file at ``path``; ``where`` names the connection (and
    the file, unless its URL is a secret) in errors."""
    if not Path(path).is_file():
        raise SqlStatementError(
            f"{where}: the SQLite database file does not exist (keel opens an existing file "
            "only: create it first, e.g. sqlite3 FILE 'VACUUM;')"
        )
    busy = BUSY_TIMEOUT if timeout is None else min(BUSY_TIMEOUT, timeout)
    try:
        conn = sqlite3.connect(
            f"{Path(path).resolve().as_uri()}?mode=rw", uri=True, timeout=busy,
            isolation_level=None,  # keel says BEGIN and COMMIT itself
        )  # fmt: skip
    except sqlite3.Error as exc:
        raise SqlUnavailableError(f"{where}: cannot open the database: {exc}") from None
    with closing(conn):
        # ATTACH opens (or makes) a second file by a path the query names: the way from
        # the file the operator named to any other (the keel store, a new file)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_RESULT_BYTES)  # one value at most
        if timeout is not None:
            deadline = time.monotonic() + timeout
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
        try:
            conn.execute("BEGIN")
            result = _run(conn, where, query, max_rows)
            conn.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            _roll_back(conn)
            raise _failure(exc, where) from None
        except BaseException:
            _roll_back(conn)
            raise


def _run(conn: sqlite3.Connection, where: str, query: Prepared, max_rows: int) -> dict[str, Any]:
    values = {name: sqlite_param(value) for name, value in query.values.items()}
    cur = conn.execute(query.text, values)
    if cur.description is None:
        return {"rows": [], "row_count": max(cur.rowcount, 0), "columns": []}
    columns = [column[0] for column in cur.description]
    rows = taken_rows(where, cur, max_rows)
    cur.close()
    return step_output(where, columns, rows, max_rows)


def _roll_back(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with suppress(sqlite3.Error):  # closing the connection rolls back what is left
            conn.execute("ROLLBACK")


def _failure(exc: sqlite3.Error, where: str) -> Exception:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == _INTERRUPTED:
        return SqlTemporaryError(f"{where}: the statement ran past the step's timeout and was "
                                 "interrupted")  # fmt: skip
    if code in _TEMPORARY:
        return SqlTemporaryError(f"{where}: {exc}")
    return SqlStatementError(f"{where}: {exc}")

"""Values across the ``sql`` step's boundary: JSON parameters into each driver, and the
driver's values out as JSON.

In: ``null``, booleans, numbers and text are bound as themselves. For PostgreSQL an
object is bound as ``jsonb`` and a list of scalars of one kind (text, numbers, booleans,
with nulls) as an array (``= ANY(:ids)``); any other list as ``jsonb``. SQLite has
neither: a list or an object is bound as its JSON text (read it with SQLite's JSON
functions).

Out: dates and times are ISO 8601 text; an interval is a number of seconds; a
``Decimal`` (PostgreSQL ``numeric``) is a JSON number when the number reads back as the
same decimal (``12.34``, ``10``), else its exact text (``"3.14159265358979323846"``, and
``"NaN"``); a float that JSON cannot hold (NaN, infinities) is text too; UUIDs and
network addresses are text; arrays and ``json`` values are JSON. Binary values are
refused (``SqlValueError``): convert them in the query (``encode(col, 'base64')`` in
PostgreSQL, ``hex(col)`` in SQLite). Any other value is its text (``str``).
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from keel.errors import NonRetryable
from keel.steps.sql_errors import SqlStatementError, SqlTooManyRowsError


class SqlValueError(NonRetryable):
    """A value the database gave cannot be JSON (binary data); the message names the column."""


#: the most bytes of values the rows of one statement may hold (text as its characters,
#: any other value as 8): past it the step fails as with too many rows, before the
#: worker holds more (the output goes into the run's history)
MAX_RESULT_BYTES = 64 * 1024 * 1024


def taken_rows(where: str, rows: Iterable[Sequence[Any]], max_rows: int) -> list[Sequence[Any]]:
    """At most ``max_rows + 1`` of ``rows``, read one at a time; a result holding more
    than ``MAX_RESULT_BYTES`` fails (``SqlTooManyRowsError``) when it gets there."""
    taken: list[Sequence[Any]] = []
    size = 0
    for row in rows:
        taken.append(row)
        size += sum(len(value) if isinstance(value, str | bytes) else 8 for value in row)
        if size > MAX_RESULT_BYTES:
            raise SqlTooManyRowsError(
                f"{where}: the statement's rows hold more than {MAX_RESULT_BYTES} bytes "
                f"(at row {len(taken)}): select fewer rows or shorter values; nothing was "
                "committed"
            )
        if len(taken) > max_rows:
            break
    return taken


def step_output(
    where: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], max_rows: int
) -> dict[str, Any]:
    """The step's output from the rows a statement gave (at most ``max_rows + 1`` read):
    too many rows, or two columns of one name, fail the step."""
    if len(rows) > max_rows:
        raise SqlTooManyRowsError(
            f"{where}: the statement gave more than {max_rows} "
            f"row{'s' if max_rows != 1 else ''} (max_rows): narrow it (WHERE, LIMIT) or "
            "raise max_rows; nothing was committed"
        )
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if twice:
        raise SqlStatementError(
            f"{where}: the result has more than one column named {', '.join(twice)}: "
            "name them apart (AS)"
        )
    return {"rows": json_rows(columns, rows), "row_count": len(rows), "columns": list(columns)}


def json_value(value: Any, column: str) -> Any:
    """``value`` of ``column`` as JSON (see the module)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise SqlValueError(
            f"column {column!r} is binary data, which JSON cannot hold: select it as text, "
            "e.g. encode(col, 'base64') in PostgreSQL or hex(col) in SQLite"
        )
    if isinstance(value, list | tuple):
        return [json_value(item, column) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item, column) for key, item in value.items()}
    return str(value)


def json_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Each row as ``{column: value}`` of JSON values."""
    return [{name: json_value(value, name) for name, value in zip(columns, row, strict=True)}
            for row in rows]  # fmt: skip


def _decimal(value: Decimal) -> int | float | str:
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    return number if Decimal(repr(number)) == value else str(value)


def postgres_param(value: Any) -> Any:
    """A JSON value as psycopg binds it (see the module)."""
    from psycopg.types.json import Jsonb

    if isinstance(value, dict):
        return Jsonb(value)
    if isinstance(value, list):
        return _array(value)
    return value


def _array(items: list[Any]) -> Any:
    from psycopg.types.json import Jsonb

    present = [item for item in items if item is not None]
    kinds = {_scalar_kind(item) for item in present}
    if not present or len(kinds) != 1 or None in kinds:
        # an empty list, or mixed kinds: psycopg cannot type an array of it
        return Jsonb(items) if present else items
    if kinds == {"number"} and any(isinstance(item, float) for item in present):
        return [None if item is None else float(item) for item in items]
    return items


def _scalar_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return None


def sqlite_param(value: Any) -> Any:
    """A JSON value as sqlite3 binds it (see the module)."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value

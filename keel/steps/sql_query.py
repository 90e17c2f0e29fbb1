"""A ``sql`` step's query made ready for one driver: its ``:name`` parameters checked
against the values given and written as the driver's placeholders.

PostgreSQL (psycopg 3) takes ``%(name)s``; psycopg reads every ``%`` of the query, in
strings and comments too, so each is doubled. SQLite's driver reads ``:name`` itself, so
the query is kept as written. Either way the values are bound by the driver, never
written into the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keel.spec.sql_text import (
    ONE_STATEMENT,
    Dialect,
    Statement,
    more_than_one_statement,
    pieces,
    statement,
)
from keel.steps.sql_errors import SqlParamsError


@dataclass(frozen=True, slots=True)
class Prepared:
    """The query for the driver, the values it binds and what kind of statement it is."""

    text: str
    values: dict[str, Any]
    statement: Statement


def prepared(query: str, dialect: Dialect, params: dict[str, Any]) -> Prepared:
    """``query`` for ``dialect``'s driver with ``params`` checked, or ``SqlParamsError``."""
    cut = pieces(query, dialect)
    _one_statement(query, dialect)
    names = list(dict.fromkeys(piece.name for piece in cut if piece.kind == "param"))
    missing = [name for name in names if name not in params]
    unused = sorted(set(params) - set(names))
    problems = []
    if missing:
        problems.append(
            f"the query uses {', '.join(':' + name for name in missing)} but params gives "
            f"no value for {', '.join(missing)}"
        )
    if unused:
        problems.append(
            f"params {', '.join(unused)} not used in the query (write "
            f"{', '.join(':' + name for name in unused)} where each value goes)"
        )
    if problems:
        raise SqlParamsError("; and ".join(problems))
    if dialect == "sqlite":
        text = query
    else:
        text = "".join(
            f"%({piece.name})s" if piece.kind == "param" else piece.source.replace("%", "%%")
            for piece in cut
        )
    return Prepared(text, {name: params[name] for name in names}, statement(query, dialect))


def _one_statement(query: str, dialect: Dialect) -> None:
    """Refuse a second statement after a ``;`` (a step runs one, in one transaction)."""
    if more_than_one_statement(query, dialect):
        raise SqlParamsError(ONE_STATEMENT)

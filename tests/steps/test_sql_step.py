"""The ``sql`` built-in step against real databases: the PostgreSQL server of this
machine (a schema of each test's own, dropped after: ``tests.postgres``) and SQLite
files. The step's task is called as a worker calls it, with the worker's folder (its
``keel.toml``) as the current one; ``tests/e2e/test_sql_email_steps_cli.py`` runs it
through ``keel run``."""

from __future__ import annotations

import secrets
import socket
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keel.errors import NonRetryable
from keel.runtime.secrets import revealing
from keel.spec.sql_text import Dialect
from keel.steps import sql as sql_module
from keel.steps.sql import sql_step
from keel.steps.sql_config import SqlConfigError
from keel.steps.sql_errors import (
    SqlDriverMissingError,
    SqlParamsError,
    SqlStatementError,
    SqlTemporaryError,
    SqlTooManyRowsError,
    SqlUnavailableError,
)
from keel.steps.sql_values import SqlValueError
from tests.postgres import URL, unavailable
from tests.steps.worker_support import attempt, enter_worker_dir


@pytest.fixture
def worker_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The worker's folder, the current one while the test runs."""
    return enter_worker_dir(tmp_path, monkeypatch)


@dataclass
class Database:
    """A database the test's worker names ``db`` in its ``keel.toml``."""

    dialect: Dialect
    url: str
    #: run SQL on it directly (set-up and checks), returning the rows
    sql: Callable[[str], list[tuple[Any, ...]]]


def _postgres_schema() -> Iterator[tuple[str, Callable[[str], list[tuple[Any, ...]]]]]:
    try:
        import psycopg
    except ImportError as exc:
        unavailable(f"psycopg is not installed ({exc})")
        raise
    try:
        admin = psycopg.connect(URL, autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable(str(exc))
        raise
    schema = f"t_{secrets.token_hex(6)}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    admin.execute(f'SET search_path TO "{schema}"')

    def run(text: str) -> list[tuple[Any, ...]]:
        cur = admin.execute(text.encode())  # bytes: run as written, no % handling
        return list(cur.fetchall()) if cur.description else []

    joiner = "&" if "?" in URL else "?"
    try:
        yield f"{URL}{joiner}options=-csearch_path%3D{schema}", run
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request: pytest.FixtureRequest, worker_dir: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = worker_dir / "data" / "app.db"
        path.parent.mkdir()

        def run(text: str) -> list[tuple[Any, ...]]:
            with closing(sqlite3.connect(path)) as conn, conn:
                return list(conn.execute(text).fetchall())

        run("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, age INT)")
        configure(worker_dir, 'url = "sqlite:///data/app.db"')  # relative to keel.toml
        yield Database("sqlite", "sqlite:///data/app.db", run)
        return
    for url, pg in _postgres_schema():
        pg("CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL UNIQUE, age int)")
        configure(worker_dir, f'url = "{url}"')
        yield Database("postgresql", url, pg)


@pytest.fixture
def pg(worker_dir: Path) -> Iterator[Database]:
    for url, run in _postgres_schema():
        configure(worker_dir, f'url = "{url}"')
        yield Database("postgresql", url, run)


def configure(folder: Path, connection: str, name: str = "db") -> None:
    (folder / "keel.toml").write_text(f"[sql.connections.{name}]\n{connection}\n")


def sql(query: str, connection: str = "db", **fields: Any) -> dict[str, Any]:
    """Run a sql step as the worker does (the ``step`` the engine gives, filled here)."""
    values = {"input": fields.pop("input", {}), "nodes": {}}
    step = {"id": "q", "kind": "sql", "connection": connection, "query": query, **fields}
    output: dict[str, Any] = sql_step(step, values, attempt("q"))
    return output


def add_people(db: Database, *people: tuple[str, int]) -> None:
    for name, age in people:
        sql(
            "INSERT INTO people (name, age) VALUES (:name, :age)", params={"name": name, "age": age}
        )


# --- statements and their output -------------------------------------------------------------


def test_a_select_gives_rows_columns_and_a_count(db: Database) -> None:
    add_people(db, ("ann", 31), ("bob", 42), ("cy", 27))

    output = sql("SELECT name, age FROM people WHERE age > :min ORDER BY age", params={"min": 30})

    assert output == {
        "rows": [{"name": "ann", "age": 31}, {"name": "bob", "age": 42}],
        "row_count": 2,
        "columns": ["name", "age"],
    }


def test_values_of_every_json_type_are_bound_from_templates(db: Database) -> None:
    data = {"n": None, "b": True, "i": 7, "f": 2.5, "s": "text", "l": [1, 2, 3], "o": {"k": ["v"]}}
    params = {name: f"${{{{ input.{name} }}}}" for name in data}  # each wholly one template
    query = "SELECT :n AS n, :b AS b, :i AS i, :f AS f, :s AS s, :l AS l, :o AS o"

    [row] = sql(query, params=params, input=data)["rows"]

    if db.dialect == "postgresql":  # a list is an array, an object jsonb
        assert row == data
    else:  # SQLite: a boolean is 1, a list or an object its JSON text
        assert row == {**data, "b": 1, "l": "[1,2,3]", "o": '{"k":["v"]}'}


def test_a_list_binds_as_an_array_for_any(pg: Database) -> None:
    pg.sql("CREATE TABLE t (id int)")
    pg.sql("INSERT INTO t SELECT generate_series(1, 5)")

    output = sql("SELECT id FROM t WHERE id = ANY(:ids) ORDER BY id", params={"ids": [2, 4, 9]})

    assert [row["id"] for row in output["rows"]] == [2, 4]


def test_insert_and_update_count_the_rows_they_changed(db: Database) -> None:
    inserted = sql("INSERT INTO people (name, age) VALUES (:a, 1), (:b, 2), (:c, 3)",
                   params={"a": "ann", "b": "bob", "c": "cy"})  # fmt: skip
    updated = sql("UPDATE people SET age = age + 10 WHERE age >= :min", params={"min": 2})
    deleted = sql("DELETE FROM people WHERE name = :name", params={"name": "nobody"})

    assert inserted == {"rows": [], "row_count": 3, "columns": []}
    assert updated["row_count"] == 2
    assert deleted["row_count"] == 0
    assert sorted(db.sql("SELECT name, age FROM people")) == [("ann", 1), ("bob", 12), ("cy", 13)]


def test_returning_gives_the_changed_rows(db: Database) -> None:
    output = sql("INSERT INTO people (name, age) VALUES (:name, 5) RETURNING name, age",
                 params={"name": "dee"})  # fmt: skip
    assert output == {"rows": [{"name": "dee", "age": 5}], "row_count": 1,
                      "columns": ["name", "age"]}  # fmt: skip


def test_an_injection_attempt_in_a_value_stays_data(db: Database) -> None:
    evil = "x'); DROP TABLE people; --"
    sql("INSERT INTO people (name, age) VALUES (:name, 1)", params={"name": evil})

    output = sql("SELECT name FROM people WHERE name = :name", params={"name": evil})

    assert output["rows"] == [{"name": evil}]
    assert db.sql("SELECT count(*) FROM people") == [(1,)]


def test_casts_and_colons_in_strings_and_comments_are_not_parameters(db: Database) -> None:
    if db.dialect == "postgresql":
        query = "SELECT ':x' AS s, :n::int + 1 AS m, '50%' AS p, $$ :y $$ AS d -- :z\n"
        expected = {"s": ":x", "m": 42, "p": "50%", "d": " :y "}
    else:
        query = "SELECT ':x' AS s, CAST(:n AS INTEGER) + 1 AS m, '50%' AS p -- :z\n"
        expected = {"s": ":x", "m": 42, "p": "50%"}

    assert sql(query, params={"n": "41"})["rows"] == [expected]


def test_a_statement_without_rows_counts_none_and_ddl_works(db: Database) -> None:
    output = sql("CREATE TABLE notes (body TEXT)")
    assert output == {"rows": [], "row_count": 0, "columns": []}
    assert db.sql("SELECT count(*) FROM notes") == [(0,)]


def test_postgres_values_become_json(pg: Database) -> None:
    query = """SELECT DATE '2024-02-29' AS day, TIMESTAMPTZ '2024-02-29 12:30:00+00' AS at,
        TIME '08:15' AS t, 12.34::numeric AS price, 10::numeric AS whole,
        3.14159265358979323846264338::numeric AS pi, 'NaN'::numeric AS nan,
        'infinity'::float8 AS inf, INTERVAL '1 hour 30 seconds' AS span,
        '6f1c2a4e-0c7e-4c57-9b1a-2b8f1f0e7c11'::uuid AS id, ARRAY[1, 2] AS arr,
        '{"a": [1, null]}'::json AS doc, '10.0.0.1'::inet AS ip"""

    [row] = sql(query)["rows"]

    assert row == {
        "day": "2024-02-29",
        "at": "2024-02-29T12:30:00+00:00",
        "t": "08:15:00",
        "price": 12.34,
        "whole": 10,
        "pi": "3.14159265358979323846264338",
        "nan": "NaN",
        "inf": "inf",
        "span": 3630.0,
        "id": "6f1c2a4e-0c7e-4c57-9b1a-2b8f1f0e7c11",
        "arr": [1, 2],
        "doc": {"a": [1, None]},
        "ip": "10.0.0.1",
    }


def test_binary_values_are_refused_naming_the_column(db: Database) -> None:
    query = (
        "SELECT '\\x0001'::bytea AS raw" if db.dialect == "postgresql" else "SELECT x'0001' AS raw"
    )
    with pytest.raises(SqlValueError, match=r"column 'raw' is binary data"):
        sql(query)


def test_two_columns_of_one_name_are_refused(db: Database) -> None:
    with pytest.raises(SqlStatementError, match=r"more than one column named a"):
        sql("SELECT 1 AS a, 2 AS a")


# --- failures --------------------------------------------------------------------------------


def test_more_rows_than_max_rows_fails_and_commits_nothing(db: Database) -> None:
    add_people(db, ("ann", 1), ("bob", 2), ("cy", 3))

    with pytest.raises(SqlTooManyRowsError, match=r"more than 2 rows \(max_rows\)"):
        sql("UPDATE people SET age = 0 RETURNING id", max_rows=2)

    assert sorted(db.sql("SELECT age FROM people")) == [(1,), (2,), (3,)]  # rolled back
    assert len(sql("SELECT id FROM people", max_rows=3)["rows"]) == 3


def test_a_huge_result_stops_at_max_rows(db: Database) -> None:
    # read a row at a time: the step stops at the first row past the limit
    query = ("SELECT * FROM generate_series(1, 100000000)" if db.dialect == "postgresql" else
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
             "SELECT i FROM n")  # fmt: skip
    with pytest.raises(SqlTooManyRowsError, match=r"more than 5 rows"):
        sql(query, max_rows=5)


def test_rows_of_huge_values_stop_at_the_size_bound(db: Database) -> None:
    """Few rows, each a MiB of text: the step stops past ``MAX_RESULT_BYTES`` (64 MiB)
    rather than hold (and record) all of them: max_rows alone would let 100 through."""
    mib = "repeat('x', 1048576)" if db.dialect == "postgresql" else "hex(zeroblob(524288))"
    query = ("SELECT {v} FROM generate_series(1, 100000000)" if db.dialect == "postgresql" else
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
             "SELECT {v} FROM n").format(v=mib)  # fmt: skip
    with pytest.raises(SqlTooManyRowsError, match=r"hold more than 67108864 bytes \(at row 65\)"):
        sql(query, max_rows=100)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # PostgreSQL bounds one at 1 GB
def test_a_sqlite_value_past_the_size_bound_is_refused(db: Database) -> None:
    with pytest.raises(SqlStatementError, match=r"too big"):
        sql("SELECT hex(zeroblob(40000000))")  # 80 MB of text in one value


def test_a_syntax_error_fails_without_retry_quoting_the_database(db: Database) -> None:
    with pytest.raises(SqlStatementError, match=r"syntax error") as caught:
        sql("SELEC name FROM people")
    assert isinstance(caught.value, NonRetryable)
    assert "sql connection 'db'" in str(caught.value)


def test_a_query_of_a_missing_table_says_so(db: Database) -> None:
    with pytest.raises(SqlStatementError, match=r"(no such table|relation .* does not exist)") as e:
        sql("SELECT * FROM nowhere WHERE a = :a", params={"a": 1})
    assert "keel read" not in str(e.value)


def test_a_constraint_violation_fails_without_retry_and_rolls_back(db: Database) -> None:
    add_people(db, ("ann", 1))
    with pytest.raises(SqlStatementError, match=r"(?i)unique"):
        sql("INSERT INTO people (name, age) VALUES (:n, 2)", params={"n": "ann"})
    assert db.sql("SELECT count(*) FROM people") == [(1,)]


def test_a_missing_parameter_fails_before_the_database_is_reached(db: Database) -> None:
    # a definition that skipped the spec's own check (e.g. from an older keel)
    with pytest.raises(NonRetryable, match=r"uses :day but 'params' gives no day"):
        sql("SELECT :day AS d")


def test_a_parameter_only_one_dialect_sees_is_checked_when_the_step_runs(pg: Database) -> None:
    # PostgreSQL reads $$...$$ as a string; SQLite would read :x in it as a parameter,
    # so the spec cannot tell whether x is used: the step tells, for its own database
    with pytest.raises(SqlParamsError, match=r"params x not used in the query"):
        sql("SELECT $$ :x $$ AS s", params={"x": 1})


def test_an_unknown_connection_names_the_setting(db: Database, worker_dir: Path) -> None:
    with pytest.raises(SqlConfigError) as caught:
        sql("SELECT 1", connection="warehouse")
    message = str(caught.value)
    assert "sql connection 'warehouse' is not configured" in message
    assert "[sql.connections.warehouse]" in message
    assert str(worker_dir / "keel.toml") in message


def test_a_connection_added_later_is_found_without_a_restart(worker_dir: Path) -> None:
    (worker_dir / "a.db").touch()
    configure(worker_dir, 'url = "sqlite:///a.db"', name="first")
    assert sql("SELECT 1 AS one", connection="first")["rows"] == [{"one": 1}]
    (worker_dir / "keel.toml").write_text(
        '[sql.connections.first]\nurl = "sqlite:///a.db"\n'
        '[sql.connections.second]\nurl = "sqlite:///a.db"\n'
    )
    assert sql("SELECT 2 AS two", connection="second")["rows"] == [{"two": 2}]


def test_a_url_from_a_secret_is_used_and_revealed_to_the_attempt(
    pg: Database, worker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg.url.replace("postgres@", "postgres:tr0ub4dor-pw@")  # trust auth: any password
    monkeypatch.setenv("KEEL_SECRET_WAREHOUSE_URL", url)
    configure(worker_dir, 'url_secret = "WAREHOUSE_URL"', name="warehouse")

    with revealing() as revealed:
        output = sql("SELECT current_schema() AS schema", connection="warehouse")

    assert output["rows"][0]["schema"].startswith("t_")
    assert revealed == {"WAREHOUSE_URL": url}  # so the attempt redacts it from what it records


def test_a_url_from_a_secret_is_never_quoted_in_errors(
    worker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_SECRET_LEDGER_URL", "sqlite:///hidden-place/ledger.db")
    configure(worker_dir, 'url_secret = "LEDGER_URL"', name="ledger")

    with pytest.raises(SqlStatementError, match=r"does not exist") as caught:
        sql("SELECT 1", connection="ledger")

    assert "hidden-place" not in str(caught.value)
    assert "sql connection 'ledger'" in str(caught.value)


def test_a_secret_url_that_cannot_connect_is_retryable_and_not_quoted(
    worker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    monkeypatch.setenv("KEEL_SECRET_LEDGER_URL", f"postgresql://ledger_owner@127.0.0.1:{port}/x")
    configure(worker_dir, 'url_secret = "LEDGER_URL"', name="ledger")

    with pytest.raises(SqlUnavailableError, match=r"cannot connect: OperationalError") as caught:
        sql("SELECT 1", connection="ledger", timeout=5.0)

    assert str(port) not in str(caught.value)
    assert "ledger_owner" not in str(caught.value)


def test_a_missing_secret_fails_naming_it(worker_dir: Path) -> None:
    configure(worker_dir, 'url_secret = "NOT_SET_ANYWHERE"', name="ledger")
    with pytest.raises(NonRetryable, match=r"secret 'NOT_SET_ANYWHERE' is not set"):
        sql("SELECT 1", connection="ledger")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('url = "sqlite:///a.db"\nuser = "x"', r"sql.connections.db: unknown key 'user'"),
        ('url = "sqlite:///a.db"\nurl_secret = "A"', r"needs one of url .* and url_secret"),
        ("", r"needs one of url"),
        ('url = "mysql://root:pw@host/db"', r"sql.connections.db.url must be postgresql://"),
        ('url_secret = "postgresql://x"', r"url_secret must be the NAME of a secret"),
    ],
)
def test_wrong_settings_name_the_file_and_key(worker_dir: Path, table: str, message: str) -> None:
    configure(worker_dir, table)
    with pytest.raises(SqlConfigError, match=message) as caught:
        sql("SELECT 1")
    assert f"keel.toml ({worker_dir / 'keel.toml'})" in str(caught.value)
    assert "root:pw" not in str(caught.value)


def test_an_unknown_key_in_the_sql_table_is_refused(worker_dir: Path) -> None:
    (worker_dir / "keel.toml").write_text('[sql]\nconnection = "x"\n')
    with pytest.raises(SqlConfigError, match=r"sql: unknown key 'connection'"):
        sql("SELECT 1")


def test_a_sqlite_file_that_does_not_exist_is_not_made(worker_dir: Path) -> None:
    configure(worker_dir, 'url = "sqlite:///typo.db"')
    with pytest.raises(SqlStatementError, match=r"does not exist"):
        sql("SELECT 1")
    assert not (worker_dir / "typo.db").exists()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # a SQLite statement
def test_a_sqlite_query_attaches_no_other_file(db: Database, worker_dir: Path) -> None:
    """The query is the spec's: it must not open a file the operator did not name (the
    keel store beside the worker), nor make one anywhere (ATTACH creates a missing file).
    VACUUM INTO, the other way to name a file, cannot run in the step's transaction."""
    made = worker_dir / "made.db"
    with pytest.raises(SqlStatementError, match=r"attached"):
        sql(f"ATTACH DATABASE '{made}' AS other")
    assert not made.exists()


def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_server_that_does_not_answer_is_retryable(worker_dir: Path) -> None:
    port = closed_port()
    configure(worker_dir, f'url = "postgresql://postgres@127.0.0.1:{port}/test"')

    with pytest.raises(SqlUnavailableError, match=r"cannot connect") as caught:
        sql("SELECT 1", timeout=5.0)

    assert not isinstance(caught.value, NonRetryable)


def test_a_statement_past_the_timeout_is_stopped_and_retryable(db: Database) -> None:
    query = ("SELECT pg_sleep(30)" if db.dialect == "postgresql" else
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
             "SELECT count(*) FROM n")  # fmt: skip
    with pytest.raises(SqlTemporaryError, match=r"past the step's timeout") as caught:
        sql(query, timeout=0.3)
    assert not isinstance(caught.value, NonRetryable)


def test_a_statement_without_a_timeout_is_stopped_at_the_default(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The query is the spec's: one that never ends must not hold the worker's thread
    for good when the node sets no timeout (the default is made short here)."""
    monkeypatch.setattr(sql_module, "DEFAULT_TIMEOUT", 0.3)
    query = ("SELECT pg_sleep(3600)" if db.dialect == "postgresql" else
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
             "SELECT count(*) FROM n")  # fmt: skip
    with pytest.raises(SqlTemporaryError, match=r"past the step's timeout"):
        sql(query)


def test_a_sqlite_file_locked_by_another_writer_is_retryable(worker_dir: Path) -> None:
    path = worker_dir / "busy.db"
    configure(worker_dir, 'url = "sqlite:///busy.db"')
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("CREATE TABLE t (a INT)")
        other.execute("BEGIN IMMEDIATE")  # holds the write lock until it ends
        other.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(SqlTemporaryError, match=r"database is locked") as caught:
            sql("INSERT INTO t VALUES (2)", timeout=0.2)
        other.execute("ROLLBACK")
    assert not isinstance(caught.value, NonRetryable)
    assert sql("INSERT INTO t VALUES (3)")["row_count"] == 1  # once the lock is gone


def test_postgres_without_psycopg_says_what_to_install(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(SqlDriverMissingError, match=r'pip install "keelflow\[postgres\]"'):
        sql("SELECT 1")

"""The ``:name`` parameters of a ``sql`` step's query (``keel.spec.sql_text``), the
checks a ``sql`` or ``email`` node makes when the spec is validated, and the query as
each driver is given it (``keel.steps.sql_query``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from keel.spec.sql_text import (
    DIALECTS,
    Dialect,
    more_than_one_statement,
    parameter_names,
    pieces,
    statement,
)
from keel.spec.step_nodes import EmailNode, SqlNode
from keel.steps.sql_errors import SqlParamsError
from keel.steps.sql_query import prepared

BOTH: tuple[Dialect, ...] = ("postgresql", "sqlite")


@pytest.mark.parametrize("dialect", BOTH)
def test_parameters_are_found_in_order_each_once(dialect: Dialect) -> None:
    query = "SELECT * FROM t WHERE a = :a AND (b IN (:b, :a) OR c=:c_2)"
    assert parameter_names(query, dialect) == ["a", "b", "c_2"]


@pytest.mark.parametrize(
    ("query", "dialect"),
    [
        ("SELECT ':x' AS s", "postgresql"),
        ("SELECT 'it''s :x' AS s", "sqlite"),
        ('SELECT 1 AS ":x"', "postgresql"),
        ("SELECT 1 -- :x\n", "sqlite"),
        ("SELECT /* :x /* :y */ :z */ 1", "postgresql"),
        ("SELECT $$ :x $$", "postgresql"),
        ("SELECT $body$ it's :x $body$", "postgresql"),
        ("SELECT E'\\' :x'", "postgresql"),
        ("SELECT '2024-01-01'::date, amount::numeric(10,2)", "postgresql"),
        ("SELECT items[lo:hi], items[1:n] FROM t", "postgresql"),
        ("SELECT `:x`, [:y] FROM t", "sqlite"),
    ],
)
def test_colons_in_strings_names_comments_and_casts_are_not_parameters(
    query: str, dialect: Dialect
) -> None:
    assert parameter_names(query, dialect) == []


def test_a_cast_right_after_a_parameter_leaves_the_parameter() -> None:
    assert parameter_names("SELECT :day::date, :n::int", "postgresql") == ["day", "n"]


def test_slice_bounds_are_parameters_with_spaces_around_the_colon() -> None:
    assert parameter_names("SELECT items[:lo : :hi] FROM t", "postgresql") == ["lo", "hi"]


def test_a_dollar_in_a_name_does_not_open_a_dollar_quote() -> None:
    # "a$b" is a name in PostgreSQL: no $b$ quote starts there
    assert parameter_names("SELECT a$b$ FROM t WHERE x = :x", "postgresql") == ["x"]


@given(st.text(alphabet=st.sampled_from(list("ab :$'\"-/*\\\nE[]`;%x")), max_size=40))
def test_the_pieces_give_the_query_back(query: str) -> None:
    for dialect in BOTH:
        assert "".join(piece.source for piece in pieces(query, dialect)) == query


def test_postgres_placeholders_replace_parameters_and_percent_is_doubled() -> None:
    query = prepared("SELECT '5%' AS p, :a LIKE '%x%' -- 100%\n", "postgresql", {"a": "y"})
    assert query.text == "SELECT '5%%' AS p, %(a)s LIKE '%%x%%' -- 100%%\n"
    assert query.values == {"a": "y"}


def test_sqlite_keeps_the_query_as_written() -> None:
    query = prepared("SELECT :a, ':b'", "sqlite", {"a": 1})
    assert query.text == "SELECT :a, ':b'"


def test_a_parameter_without_a_value_and_a_value_not_used_are_refused() -> None:
    with pytest.raises(SqlParamsError, match=r"uses :b but params gives no value for b"):
        prepared("SELECT :a, :b", "sqlite", {"a": 1})
    with pytest.raises(SqlParamsError, match=r"params c not used in the query \(write :c"):
        prepared("SELECT :a", "postgresql", {"a": 1, "c": 2})


@pytest.mark.parametrize(
    "query", ["SELECT 1; DROP TABLE t", "SELECT 1; -- fine\nSELECT 2", "UPDATE t SET a = 1;;x"]
)
def test_a_second_statement_is_refused(query: str) -> None:
    with pytest.raises(SqlParamsError, match="more than one statement"):
        prepared(query, "postgresql", {})


@pytest.mark.parametrize("query", ["SELECT ';' AS s;", "SELECT 1; -- a comment", "SELECT 1;\n"])
def test_a_closing_semicolon_and_semicolons_in_strings_are_one_statement(query: str) -> None:
    assert prepared(query, "sqlite", {}).text == query


@pytest.mark.parametrize(
    ("query", "verb", "rows", "reads"),
    [
        ("  -- a comment\n select 1", "SELECT", True, True),
        (
            "WITH gone AS (DELETE FROM t RETURNING *) SELECT count(*) FROM gone",
            "SELECT",
            True,
            True,
        ),
        ("with x as (select 1) delete from t", "DELETE", False, False),
        ("UPDATE t SET a = 1 RETURNING a", "UPDATE", True, False),
        ("INSERT INTO t VALUES (1)", "INSERT", False, False),
        ("SELECT * INTO copy FROM t", "SELECT", False, False),
        ("(SELECT 1) UNION (SELECT 2)", "SELECT", True, True),
        ("EXPLAIN ANALYZE DELETE FROM t", "EXPLAIN", True, False),
        ("CREATE TABLE t (a int)", "CREATE", False, False),
    ],
)
def test_what_a_statement_is_is_read_from_its_words(
    query: str, verb: str, rows: bool, reads: bool
) -> None:
    found = statement(query, "postgresql")
    assert (found.verb, found.gives_rows, found.reads_only) == (verb, rows, reads)


# --- checks when the spec is validated -------------------------------------------------------


def sql_node(query: str, **params: object) -> SqlNode:
    return SqlNode(id="q", connection="db", query=query, params=params)


def test_a_sql_node_must_give_every_parameter_its_query_uses() -> None:
    with pytest.raises(ValidationError, match=r"the query uses :day but 'params' gives no day"):
        sql_node("SELECT * FROM t WHERE day = :day")


def test_a_sql_node_must_use_every_value_it_gives() -> None:
    with pytest.raises(ValidationError, match=r"params extra not used in the query"):
        sql_node("SELECT :a", a=1, extra="${{ input.x }}")


def test_a_sql_node_with_templates_as_values_is_valid() -> None:
    node = sql_node("SELECT * FROM t WHERE id = :id AND tags @> :tags::jsonb",
                    id="${{ input.id }}", tags={"k": "${{ input.k }}"})  # fmt: skip
    assert node.templates() == {
        "params": {"id": "${{ input.id }}", "tags": {"k": "${{ input.k }}"}}
    }


def test_a_sql_node_refuses_a_parameter_name_that_is_not_one() -> None:
    with pytest.raises(ValidationError, match=r"'a-b' is not a parameter name"):
        sql_node("SELECT 1", **{"a-b": 1})


def test_a_sql_node_side_effect_skips_comments_and_reads_past_with() -> None:
    assert not sql_node("/* report */ SELECT 1").changes_the_world
    assert sql_node("WITH x AS (SELECT 1) DELETE FROM t").changes_the_world


def test_an_email_node_checks_the_addresses_written_as_they_are() -> None:
    with pytest.raises(ValidationError, match=r"cc: 'ops at example' is not a valid email"):
        EmailNode(id="m", to=["a@example.com"], cc=["ops at example"], subject="s")
    node = EmailNode(id="m", to=["Ann <ann@example.com>", "${{ input.to }}"], subject="s")
    assert node.to[1] == "${{ input.to }}"


def test_an_email_node_refuses_a_two_line_subject_and_a_written_password() -> None:
    with pytest.raises(ValidationError, match=r"subject: a subject is one line"):
        EmailNode(id="m", to=["a@example.com"], subject="hi\r\nBcc: x@example.com")
    with pytest.raises(ValidationError, match=r"password: name a secret"):
        EmailNode(id="m", to=["a@example.com"], subject="s", username="u", password="hunter22")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_second_statement_is_found_but_not_a_semicolon_in_text(dialect: Dialect) -> None:
    assert more_than_one_statement("SELECT 1; DROP TABLE x", dialect)
    assert not more_than_one_statement("SELECT ';' AS a; -- done\n;", dialect)
    assert not more_than_one_statement("SELECT 1 /* ; DROP */", dialect)

"""``--input`` and ``-i key=value`` as ``keel run`` parses them (``keel.cli.common``):
a value is JSON or text, so a quoted string is the string inside the quotes."""

from __future__ import annotations

from typing import Any

import pytest

from keel.cli.common import parse_input

NAME_IS_TEXT = {"type": "object", "properties": {"name": {"type": "string"}}}


@pytest.mark.parametrize("schema", [None, NAME_IS_TEXT])
@pytest.mark.parametrize(
    ("pair", "value"),
    [
        ('name="123"', "123"),  # a JSON string: its quotes are not part of it
        ('name=""', ""),
        ('name="a \\"b\\""', 'a "b"'),
        ("name=ann", "ann"),  # not JSON: the text as it is
        ('name="unclosed', '"unclosed'),
    ],
)
def test_a_quoted_value_is_the_json_string_inside_the_quotes(
    schema: dict[str, Any] | None, pair: str, value: str
) -> None:
    assert parse_input(None, [pair], schema) == {"name": value}


def test_a_field_typed_as_text_keeps_what_json_would_read_as_another_type() -> None:
    pairs = ["name=02134", "name2=123"]
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}

    assert parse_input(None, pairs, schema) == {"name": "02134", "name2": 123}
    assert parse_input(None, ["name=123"], schema) == {"name": "123"}
    assert parse_input(None, ["name=null"], schema) == {"name": "null"}

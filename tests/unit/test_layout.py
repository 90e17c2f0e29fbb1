"""Tables and fields fitted to the console: key columns whole on every row, extra
columns left out when there is no room, long values shortened, wrapped or moved under
their row, and no line wider than the console."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.text import Text

from keel.cli.layout import Column, field_lines, table_lines

LONG = "ValueError: " + "the amount must be a positive number of cents " * 3

COLUMNS = [
    Column("node"),
    Column("status"),
    Column("attempts", justify="right"),
    Column("started", role="extra"),
    Column("error", role="long", wrap=True, min_width=24),
]
ROWS = [
    ["validate_customer_address", "succeeded", "1", "2026-12-06 06:29:03", ""],
    ["charge_credit_card", "failed", "3", "2026-12-06 06:29:04", LONG],
]


def console(width: int) -> Console:
    return Console(file=io.StringIO(), width=width)


def plain(lines: list[Text]) -> list[str]:
    return [line.plain for line in lines]


@pytest.mark.parametrize("width", [60, 80, 120, 400])
def test_key_columns_stay_whole_and_no_line_is_wider_than_the_console(width: int) -> None:
    lines = plain(table_lines(console(width), COLUMNS, ROWS))
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    assert lines[0].split()[:3] == ["node", "status", "attempts"]
    assert lines[1].split()[:3] == ["validate_customer_address", "succeeded", "1"]
    charge = next(line for line in lines if line.startswith("charge_credit_card"))
    assert charge.split()[:3] == ["charge_credit_card", "failed", "3"]
    assert " ".join(" ".join(lines).split()).count(" ".join(LONG.split())) == 1


def test_an_extra_column_goes_before_a_long_one_is_squeezed() -> None:
    lines = plain(table_lines(console(80), COLUMNS, ROWS))
    assert "started" not in lines[0]
    assert "error" in lines[0]  # beside the row, wrapped
    assert plain(table_lines(console(200), COLUMNS, ROWS))[0].split() == [
        "node", "status", "attempts", "started", "error"]  # fmt: skip


def test_a_long_column_with_too_little_room_goes_under_its_row() -> None:
    lines = plain(table_lines(console(70), COLUMNS, ROWS))  # the extra column still fits
    assert lines[0].split() == ["node", "status", "attempts", "started"]
    under = lines[lines.index(next(x for x in lines if x.startswith("charge"))) + 1]
    assert under.startswith("    error: ValueError: the amount")


def test_a_shortened_value_ends_with_an_ellipsis() -> None:
    columns = [Column("seq"), Column("details", role="long", min_width=10)]
    (_, line) = plain(table_lines(console(30), columns, [["1", "x" * 100]]))
    assert len(line) == 30
    assert line.endswith("x…")


def test_a_field_wraps_under_its_value() -> None:
    lines = plain(field_lines(console(40), "reason", LONG))
    assert lines[0].startswith("  reason    ValueError:")
    assert all(line.startswith(" " * 12) for line in lines[1:])
    assert all(len(line) <= 40 for line in lines)

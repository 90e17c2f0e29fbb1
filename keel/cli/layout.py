"""Output people read, fitted to the console's width (a terminal's, or ``COLUMNS``, or 80
when piped): tables whose important columns are never dropped or squeezed, and labelled
fields whose long values wrap under themselves.

A table has four kinds of columns. *Key* columns (a node's id, a status, an attempt
count, an event's kind) are printed whole on every row. *Extra* columns are printed whole
when there is room and left out otherwise, the least important first. *Long* columns (an
input, an output, an error) share the width that is left: shortened with "…" or wrapped;
when less than their minimum is left, they go on indented lines under their row instead
of into a few letters a line. *Under* columns always go there (an approval's
description). The full values are always in the commands' ``--json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.console import Console
from rich.text import Text

#: spaces between two columns
GAP = 2
#: how far the lines under a row are indented
INDENT = 4

Cell = str | Text


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    role: Literal["key", "extra", "long", "under"] = "key"
    #: extra columns: the lowest is left out first (then the rightmost)
    keep: int = 0
    #: long columns: wrap onto more lines rather than end with "…"
    wrap: bool = False
    #: long columns: narrower than this, they go under their row
    min_width: int = 16
    #: long and under columns, under their row: the label before the value ("" for none)
    label: str | None = None
    justify: Literal["left", "right"] = "left"


def _text(cell: Cell, *, one_line: bool) -> Text:
    text = Text(cell) if isinstance(cell, str) else cell.copy()
    if one_line and "\n" in text.plain:
        text = Text(" ").join(text.split("\n", allow_blank=True))
    return text


def _fit(text: Text, width: int, justify: str) -> Text:
    """``text`` made exactly ``width`` cells wide: shortened with "…" or padded."""
    text = text.copy()
    text.truncate(width, overflow="ellipsis", pad=False)
    text.align("right" if justify == "right" else "left", width)
    return text


def _shares(wanted: list[int], available: int) -> list[int]:
    """Split ``available`` between columns wanting ``wanted``: the narrow ones get what
    they want, the rest share what is left evenly."""
    given = [0] * len(wanted)
    left, todo = available, sorted(range(len(wanted)), key=lambda i: wanted[i])
    while todo:
        share = left // len(todo)
        index = todo.pop(0)
        given[index] = min(wanted[index], share) if todo else min(wanted[index], left)
        left -= given[index]
    return given


def table_lines(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]
) -> list[Text]:
    """The table's lines (header first), none wider than the console when the key
    columns fit in it."""
    width = console.width
    long_columns = [i for i, c in enumerate(columns) if c.role == "long"]
    cells = [
        [_text(cell, one_line=columns[i].role in ("key", "extra") or not columns[i].wrap)
         for i, cell in enumerate(row)]
        for row in rows
    ]  # fmt: skip
    natural = [
        max([len(column.header)] + [max((line.cell_len for line in row[i].split("\n")),
                                        default=0) for row in cells])
        for i, column in enumerate(columns)
    ]  # fmt: skip
    shown = [i for i, c in enumerate(columns) if c.role in ("key", "extra")]

    def needed(fixed: list[int], inline: list[int]) -> int:
        count = len(fixed) + len(inline)
        return (sum(natural[i] for i in fixed) + sum(columns[i].min_width for i in inline)
                + GAP * max(count - 1, 0))  # fmt: skip

    # empty ones go first, then the least important, then the rightmost
    extras = sorted(
        (i for i in shown if columns[i].role == "extra"),
        key=lambda i: (any(row[i].plain for row in cells), columns[i].keep, -i),
    )

    def fitting(inline: list[int]) -> list[int] | None:
        """The columns shown with ``inline`` beside them, the fewest extras left out."""
        kept = list(shown)
        for extra in [None, *extras]:
            if extra is not None:
                kept.remove(extra)
            if needed(kept, inline) <= width:
                return kept
        return None

    with_long = fitting(long_columns)
    inline = long_columns if with_long is not None else []
    if with_long is None:
        with_long = fitting([]) or [i for i in shown if columns[i].role == "key"]
    shown = with_long
    widths = {i: natural[i] for i in shown}
    if inline:
        room = width - needed(shown, []) - GAP * len(inline)
        if not shown:
            room += GAP
        widths.update(zip(inline, _shares([natural[i] for i in inline], room), strict=True))
    order = sorted(widths)
    below = [i for i, c in enumerate(columns)
             if (c.role == "long" and i not in inline) or c.role == "under"]  # fmt: skip
    lines = [_row_lines(console, columns, order, widths,
                        [Text(c.header, style="bold") for c in columns])[0]]  # fmt: skip
    for row in cells:
        lines.extend(_row_lines(console, columns, order, widths, row))
        for i in below:
            if row[i].plain.strip():
                lines.extend(_under(console, columns[i], row[i], width))
    for line in lines:
        line.rstrip()
    return lines


def _row_lines(
    console: Console,
    columns: Sequence[Column],
    order: list[int],
    widths: dict[int, int],
    row: Sequence[Text],
) -> list[Text]:
    parts: list[list[Text]] = []
    for i in order:
        column, cell = columns[i], row[i]
        if column.role == "long" and column.wrap:
            wrapped = list(cell.wrap(console, widths[i], overflow="fold")) or [Text()]
            parts.append([_fit(line, widths[i], column.justify) for line in wrapped])
        else:
            parts.append([_fit(cell, widths[i], column.justify)])
    height = max((len(p) for p in parts), default=1)
    lines = []
    for n in range(height):
        line = Text()
        for k, i in enumerate(order):
            if k:
                line.append(" " * GAP)
            line.append_text(parts[k][n] if n < len(parts[k]) else Text(" " * widths[i]))
        line.rstrip()
        lines.append(line)
    return lines


def _under(console: Console, column: Column, cell: Text, width: int) -> list[Text]:
    """A long value on its own lines under its row, after its label."""
    label = column.header if column.label is None else column.label
    text = Text(f"{label}: ", style="dim") + cell if label else cell.copy()
    room = max(width - INDENT, 20)
    if column.wrap:
        wrapped = list(text.wrap(console, room, overflow="fold"))
    else:
        wrapped = [_text(text, one_line=True)]
        wrapped[0].truncate(room, overflow="ellipsis")
    return [Text(" " * INDENT) + line for line in wrapped]


def print_table(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]
) -> None:
    for line in table_lines(console, columns, rows):
        console.print(line, soft_wrap=True)


def hanging_lines(console: Console, head: Text, value: Cell) -> list[Text]:
    """``head`` then ``value``, which wraps under its own first letter (or, when the head
    leaves less than 20 columns, under the head's)."""
    text = _text(value, one_line=False)
    indent = _value_indent(console, head)
    wrapped = list(text.wrap(console, console.width - indent, overflow="fold")) or [Text()]
    lines = [head.copy()] if indent < head.cell_len else [head + wrapped.pop(0)]
    lines += [Text(" " * indent) + line for line in wrapped]
    for line in lines:
        line.rstrip()
    return lines


def _value_indent(console: Console, head: Text) -> int:
    """Where the lines of a value after ``head`` start: under its first letter, unless
    that leaves it less than 20 columns."""
    return head.cell_len if console.width - head.cell_len >= 20 else INDENT


def _field_head(label: str) -> Text:
    return Text(f"  {label:<10}")


def field_lines(console: Console, label: str, value: Cell) -> list[Text]:
    """``  label     value``, long values wrapping under the value's first letter."""
    return hanging_lines(console, _field_head(label), value)


def print_field(console: Console, label: str, value: Cell, *, style: str = "") -> None:
    for line in field_lines(console, label, value):
        if style:
            line.stylize(style)
        console.print(line, soft_wrap=True)


def print_field_with_command(
    console: Console, label: str, value: str, command: str, *, style: str = ""
) -> None:
    """``  label     value: command`` on one line when it fits; else the command on a
    line of its own under the value, whole: a command broken across lines cannot be
    copied (one wider than the console is left to the terminal to wrap)."""
    together = field_lines(console, label, f"{value}: {command}")
    if len(together) == 1:
        lines = together
    else:
        lines = field_lines(console, label, f"{value}:")
        lines.append(Text(" " * _value_indent(console, _field_head(label)) + command))
    for line in lines:
        if style:
            line.stylize(style)
        console.print(line, soft_wrap=True)


def print_wrapped(console: Console, head: str, text: str) -> None:
    """``text`` after ``head`` on ``console``, its lines wrapped under itself at the
    console's width (``hanging_lines``)."""
    for line in hanging_lines(console, Text(head), Text(text)):
        console.print(line, soft_wrap=True)


def echo_wrapped(head: str, text: str, *, err: bool = False) -> None:
    """``text`` after ``head`` on standard output (``err``: standard error), its lines
    wrapped under itself at the console's width: for report lines and messages that
    would otherwise run past 80 columns when piped."""
    print_wrapped(Console(stderr=err, highlight=False), head, text)

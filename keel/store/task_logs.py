"""What a task logged, as the store keeps it: lines of one attempt to write, and lines
read back with their place in the run.

A run's lines are numbered 1, 2, 3... (``seq``) in the order they were written, whatever
attempt wrote them: the store gives the numbers, under the run's write lock, so a
reader that pages by ``seq`` (``keel logs --follow``) never misses a line written after
its last page. The worker bounds and cleans the lines before they get here
(``keel.runtime.execution.task_logs``); the store writes what it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keel.store.records import item_column, item_of


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line: when (seconds since the epoch), its level's name, and the message
    (with the exception's traceback after it, when one was logged)."""

    at: float
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class AttemptLines:
    """Lines of one attempt to append to its run's (``Store.keep_task_logs``, or
    ``KeepLogs`` with the attempt's outcome)."""

    run_id: str
    node: str
    item: int | None
    attempt: int
    lines: Sequence[LogLine]


@dataclass(frozen=True, slots=True)
class TaskLogLine:
    """A stored line, with its place: the run's ``seq`` and the attempt that wrote it."""

    run_id: str
    seq: int
    node: str
    item: int | None
    attempt: int
    at: float
    level: str
    message: str


def task_log_rows(first_seq: int, lines: AttemptLines) -> list[tuple[Any, ...]]:
    """The rows ``insert_task_log`` takes, numbered from ``first_seq``."""
    item = item_column(lines.item)
    return [
        (lines.run_id, first_seq + index, lines.node, item, lines.attempt, line.at, line.level,
         line.message)
        for index, line in enumerate(lines.lines)
    ]  # fmt: skip


def task_log_of(row: Sequence[Any]) -> TaskLogLine:
    """A line from ``select_task_logs``'s columns (those of ``task_log_rows``)."""
    run_id, seq, node, item, attempt, at, level, message = row
    return TaskLogLine(run_id, int(seq), node, item_of(item), int(attempt), float(at), level,
                       message)  # fmt: skip

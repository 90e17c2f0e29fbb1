"""Runs summed up in groups, for people who watch many of them (the dashboard): how many
started and ended in each step of a window (throughput), and the failed runs by the
type of their error and the node that failed (``RunRecord.error_type``, ``failed_node``).

Each is one grouped query on an index the runs already have (by creation time, by end
time, and the failed runs' index by error type and node), so its cost grows with the
runs in the window or with the failed runs, never with their histories. A group is
exactly what ``list_runs`` and ``count_runs`` select with the same filters, so a count
shown here is the length of the list it links to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: the statuses a run ends with, in the order they are shown
ENDINGS = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Throughput:
    """Runs started and ended in each of ``steps`` steps of ``step`` seconds from
    ``since``: step ``i`` is ``[since + i * step, since + (i + 1) * step)``."""

    since: float
    step: float
    #: runs created in each step
    started: list[int]
    #: final status -> runs that ended with it in each step (by their ``ended_at``; a
    #: run retried by hand and ended again counts at its last end)
    ended: dict[str, list[int]] = field(default_factory=dict)

    def ended_total(self) -> list[int]:
        """Runs that ended in each step, whatever their status."""
        return [sum(counts) for counts in zip(*self.ended.values(), strict=True)] or [
            0 for _ in self.started
        ]


def throughput_of(
    since: float, step: float, steps: int,
    started: Iterable[Sequence[Any]], ended: Iterable[Sequence[Any]],
) -> Throughput:  # fmt: skip
    """The rows of ``runs_started_per_step`` (step, count) and ``runs_ended_per_step``
    (step, status, count), as both backends select them; steps out of range (a clock
    ahead of the reader's) are left out."""
    counts = [0] * steps
    for place, count in started:
        if 0 <= int(place) < steps:
            counts[int(place)] += int(count)
    ends = {status: [0] * steps for status in ENDINGS}
    for place, status, count in ended:
        if 0 <= int(place) < steps and status in ends:
            ends[status][int(place)] += int(count)
    return Throughput(since, step, counts, ends)


def step_of(at: float, since: float, step: float) -> int:
    """The step a time falls in (what the queries compute, in Python, for tests)."""
    return math.floor((at - since) / step)


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Failed runs with the same error type and failed node (None: a run that failed
    as a whole, whose failing node has no error)."""

    error_type: str | None
    node: str | None
    count: int
    #: the newest such run's creation time
    newest_at: float


def failure_group_of(row: Sequence[Any]) -> FailureGroup:
    """``failure_groups``' columns: error type, node, count, newest creation time."""
    error_type, node, count, newest = row
    return FailureGroup(error_type, node, int(count), float(newest))

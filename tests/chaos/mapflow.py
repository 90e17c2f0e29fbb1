"""A map whose items are fed a few at a time (``max_parallel``), for the test of
workers sharing runs under ordinary load: each item's outcome schedules the next, so
several workers append to one run at once and group commits hold several outcomes of
one run."""

from __future__ import annotations

import keel

WIDTH = 12


@keel.task
def split(n: int) -> list[int]:
    return [n * WIDTH + k for k in range(WIDTH)]


@keel.task
def work(x: int) -> int:
    return x * x + 1


@keel.task
def total(values: list[int]) -> int:
    return sum(values)


@keel.workflow
def fed(n: int = 0) -> dict[str, object]:
    values = keel.map(work, split(n), max_parallel=4)
    return {"values": values, "total": total(values)}


def expected(n: int = 0) -> dict[str, object]:
    values = [x * x + 1 for x in range(n * WIDTH, n * WIDTH + WIDTH)]
    return {"values": values, "total": sum(values)}

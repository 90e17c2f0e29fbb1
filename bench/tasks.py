"""Trivial task functions for the benchmarks: the work is nothing, so what is measured is
keel's own cost per step."""

from __future__ import annotations

import keel


@keel.task
def inc(x: int) -> int:
    return x + 1


@keel.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@keel.task
def double(x: int) -> int:
    return x * 2


@keel.task
def total(values: list[int]) -> int:
    return sum(values)


@keel.task
def add_one(values: list[int]) -> int:
    return max(values, default=0) + 1

"""Trivial task functions for the benchmarks: the work is nothing, so what is measured is
keel's own cost per step."""

from __future__ import annotations


def inc(x: int) -> int:
    return x + 1


def numbers(n: int) -> list[int]:
    return list(range(n))


def double(x: int) -> int:
    return x * 2


def total(values: list[int]) -> int:
    return sum(values)


def add_one(values: list[int]) -> int:
    return max(values, default=0) + 1

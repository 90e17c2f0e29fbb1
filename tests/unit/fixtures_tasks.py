"""Module-level task functions that validation tests resolve by import path.

Validation with ``resolve_tasks=True`` imports ``tests.unit.fixtures_tasks:<name>`` and
reads the real signatures and type hints, so these must stay plain, typed functions.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import keel

NOT_A_FUNCTION = 42


class Claim(BaseModel):
    id: str
    amount: float
    tags: list[str]


@keel.task
def extract(document: str) -> Claim:
    return Claim(id=document, amount=1.0, tags=[])


@keel.task
def score(claim: Claim, weight: float = 1.0) -> float:
    return claim.amount * weight


@keel.task
def add(a: int, b: int = 0) -> int:
    return a + b


@keel.task
def greet(name: str) -> str:
    return f"hello {name}"


@keel.task
def numbers(count: int) -> list[int]:
    return list(range(count))


@keel.task
def words(count: int) -> list[str]:
    return ["w"] * count


@keel.task
def double(item: int, factor: int = 2) -> int:
    return item * factor


@keel.task
def anything(**options: Any) -> dict[str, Any]:
    return options


@keel.task
def untyped(value):  # type: ignore[no-untyped-def]
    return value


@keel.task
def positional(value: int, /) -> int:
    return value


@keel.task
def nothing() -> None:
    return None

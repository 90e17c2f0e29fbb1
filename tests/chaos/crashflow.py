"""A 56-node workflow for crash tests: a chain, a fan-out/fan-in, and a map.

Every task appends its idempotency key to the file named by ``KEEL_TEST_KEYS`` after
doing its work, so a test can count how often each node really ran. Tasks sleep a few
milliseconds (``KEEL_TEST_SLEEP``) so that kills land at varied places.
"""

from __future__ import annotations

import os
import time

import keel

CHAIN = 25
FAN = 25


def _ran() -> None:
    time.sleep(float(os.environ.get("KEEL_TEST_SLEEP", "0.002")))
    key = keel.context().idempotency_key
    with open(os.environ["KEEL_TEST_KEYS"], "a", encoding="utf-8") as keys:
        keys.write(key + "\n")


@keel.task
def inc(x: int) -> int:
    _ran()
    return x + 1


@keel.task
def times(x: int, k: int) -> int:
    _ran()
    return x * k


@keel.task
def total(values: list[int]) -> int:
    _ran()
    return sum(values)


@keel.task
def spread(x: int) -> list[int]:
    _ran()
    return list(range(x % 7, x % 7 + 8))


@keel.task
def square(x: int) -> int:
    _ran()
    return x * x


@keel.workflow
def crash(start: int = 0) -> dict[str, int]:
    value = inc(start)
    for _ in range(CHAIN - 1):
        value = inc(value)
    fanned = [times(value, k) for k in range(1, FAN + 1)]
    summed = total(fanned)
    squares = keel.map(square, spread(summed))
    return {"chain": value, "sum": summed, "squares": total(squares)}


def expected(start: int = 0) -> dict[str, int]:
    chain = start + CHAIN
    summed = sum(chain * k for k in range(1, FAN + 1))
    items = list(range(summed % 7, summed % 7 + 8))
    return {"chain": chain, "sum": summed, "squares": sum(i * i for i in items)}

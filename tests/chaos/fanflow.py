"""A small fan-out workflow for the distributed chaos test: ``split`` turns the input
into ``WIDTH`` numbers, ``keel.map`` runs ``work`` on each, and ``total`` sums them.

Every task appends its idempotency key to the file named by ``KEEL_TEST_KEYS`` (when
set) after doing its work, so a test can count how often each attempt really ran. The
map items sleep ``KEEL_TEST_SLEEP`` seconds so that kills land while work is held.
"""

from __future__ import annotations

import os
import time

import keel

WIDTH = 5


def _ran() -> None:
    keys = os.environ.get("KEEL_TEST_KEYS")
    if keys:
        with open(keys, "a", encoding="utf-8") as out:
            out.write(keel.context().idempotency_key + "\n")


@keel.task
def split(n: int) -> list[int]:
    _ran()
    return [n * WIDTH + k for k in range(WIDTH)]


@keel.task
def work(x: int) -> int:
    time.sleep(float(os.environ.get("KEEL_TEST_SLEEP", "0.005")))
    _ran()
    return x * x + 1


@keel.task
def total(values: list[int]) -> int:
    _ran()
    return sum(values)


@keel.workflow
def fan(n: int = 0) -> dict[str, object]:
    values = keel.map(work, split(n))
    return {"values": values, "total": total(values)}


def expected(n: int = 0) -> dict[str, object]:
    values = [x * x + 1 for x in range(n * WIDTH, n * WIDTH + WIDTH)]
    return {"values": values, "total": sum(values)}

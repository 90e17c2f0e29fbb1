"""W7's workflow, imported by path by the ``keel worker`` processes of the benchmark.

``numbers`` makes ``WIDTH`` ints from the run's input, ``keel.map`` doubles each, and
``total`` sums them: ``WIDTH + 2`` task executions per run. The bodies do nothing that
costs, so what is measured is keel's own cost per node across processes.
"""

from __future__ import annotations

from typing import Any

import keel

WIDTH = 8
#: task executions in one run: the root, one per item, the join
NODES_PER_RUN = WIDTH + 2


@keel.task
def numbers(n: int) -> list[int]:
    return [n * WIDTH + k for k in range(WIDTH)]


@keel.task
def double(x: int) -> int:
    return x * 2


@keel.task
def total(values: list[int]) -> int:
    return sum(values)


@keel.workflow(name="bench-fan")
def fan(n: int = 0) -> dict[str, int]:
    doubled: Any = keel.map(double, numbers(n))  # while tracing: the future list[int]
    return {"total": total(doubled)}


def expected(n: int) -> dict[str, int]:
    """The output of the run whose input is ``{"n": n}``."""
    return {"total": sum(2 * (n * WIDTH + k) for k in range(WIDTH))}

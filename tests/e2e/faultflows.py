"""Workflows for the storage-fault tests (``tests/e2e/test_storage_faults.py``).

``chain`` is a chain of ``STEPS`` steps, each adding ``size`` characters of padding to
its output, so a run writes a known, growing amount to the database as it goes: on a
small disk it fills the disk part-way through. ``hello`` is one small step.
"""

from __future__ import annotations

import keel

STEPS = 24


@keel.task
def grow(n: int, size: int) -> int:
    return n + 1


@keel.task
def padded(n: int, size: int) -> dict[str, object]:
    return {"n": n, "pad": "x" * size}


@keel.task
def unpad(value: dict[str, object]) -> int:
    n = value["n"]
    assert isinstance(n, int)
    return n + 1


@keel.workflow
def chain(size: int = 1000) -> int:
    n = grow(0, size)
    for _ in range(STEPS):
        n = unpad(padded(n, size))
    return n


@keel.task
def greet(name: str) -> str:
    return f"hello {name}"


@keel.workflow
def hello(name: str = "ann") -> str:
    return greet(name)

"""Task functions for the runtime tests, resolved by import path
(``tests.unit.runtime_tasks:<name>``) exactly as a worker resolves a spec's tasks.

The worker tests coordinate with running tasks through the module-level ``probe``; a
test calls ``reset()`` before it starts a run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

import keel
from keel import StepContext

if TYPE_CHECKING:  # only for annotations, as ruff's TC rules arrange imports
    from decimal import Decimal


# --- arguments and results ------------------------------------------------------------------


class Claim(BaseModel):
    id: str
    amount: float


@dataclass
class Point:
    x: int
    y: int
    tags: tuple[str, ...] = ()


@keel.task
def describe_claim(claim: Claim) -> dict[str, Any]:
    return {"model": isinstance(claim, Claim), "id": claim.id, "amount": claim.amount}


@keel.task
def total(values: list[int]) -> int:
    return sum(values)


@keel.task
def make_claim(claim_id: str) -> Claim:
    return Claim(id=claim_id, amount=2.5)


@keel.task
def make_point() -> Point:
    return Point(1, 2, ("a", "b"))


@keel.task
def make_tuple() -> tuple[int, str]:
    return (1, "two")


@keel.task
def make_set() -> set[int]:
    return {3}


@keel.task
def make_object() -> object:
    return object()


@keel.task
def make_nan() -> float:
    return float("nan")


@keel.task
def echo(value: Any = None) -> Any:
    return value


@keel.task
def positional(a: int, b: int = 10, /, c: int = 100) -> list[int]:
    return [a, b, c]


@keel.task
def positional_defaults(a: int = 1, b: int = 2, /) -> list[int]:
    return [a, b]


@keel.task
def with_default(x: int, y: int = 5) -> list[int]:
    return [x, y]


# --- failures -------------------------------------------------------------------------------


class Outer:
    class TaskError(Exception):
        pass


@keel.task
def fail_value(message: str) -> None:
    raise ValueError(message)


@keel.task
def fail_nested(message: str) -> None:
    raise Outer.TaskError(message)


@keel.task
def fail_for_good(message: str) -> None:
    raise keel.NonRetryable(message)


@keel.task
def exit_task() -> None:
    raise SystemExit(3)


@keel.task
def flaky(ctx: keel.StepContext) -> str:
    """Fails its first attempt, succeeds after."""
    if ctx.attempt == 1:
        raise ValueError("first attempt fails")
    return f"ok on attempt {ctx.attempt}"


# --- the step context -----------------------------------------------------------------------


@keel.task
def with_context(n: int, ctx: keel.StepContext) -> dict[str, Any]:
    return {
        "n": n,
        "key": ctx.idempotency_key,
        "same": keel.context() is ctx,
        "node": ctx.node,
        "attempt": ctx.attempt,
    }


@keel.task
def with_string_context(n: int, ctx: StepContext) -> dict[str, Any]:
    """Under ``from __future__ import annotations`` the annotation is the string
    ``"StepContext"``."""
    return {"n": n, "key": ctx.idempotency_key, "same": keel.context() is ctx}


@keel.task
def with_type_checking_hint(
    n: int, ctx: StepContext, amount: Decimal | None = None
) -> dict[str, Any]:
    """``Decimal`` is imported only for type checkers, so ``typing.get_type_hints``
    cannot resolve this signature at run time."""
    return {"n": n, "key": ctx.idempotency_key, "same": keel.context() is ctx}


@keel.task
def context_only() -> str:
    return keel.context().idempotency_key


# --- async tasks ----------------------------------------------------------------------------


@keel.task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b + (1 if keel.context().node == "plus_one" else 0)


@keel.task
async def async_fail(message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


@keel.task
async def async_sleep() -> None:
    await asyncio.sleep(10)


@keel.task
async def async_raises_timeout() -> None:
    raise TimeoutError("the upstream API timed out")


# --- coordination with the worker tests -----------------------------------------------------


@dataclass
class Probe:
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    peak: int = 0
    calls: list[str] = field(default_factory=list)
    barrier: threading.Barrier = field(default_factory=lambda: threading.Barrier(2, timeout=10))
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


probe = Probe()


def reset() -> Probe:
    global probe
    probe = Probe()
    return probe


def _enter(name: str) -> Probe:
    current = probe
    with current.lock:
        current.running += 1
        current.peak = max(current.peak, current.running)
        current.calls.append(name)
    return current


def _leave(current: Probe) -> None:
    with current.lock:
        current.running -= 1


@keel.task
def paired(name: str) -> str:
    """Waits at the barrier for a second task, so two of them really run at once."""
    current = _enter(name)
    try:
        current.barrier.wait()
    finally:
        _leave(current)
    return name


@keel.task
def counted(name: str) -> str:
    current = _enter(name)
    _leave(current)
    return name


@keel.task
def blocking(name: str) -> str:
    """Signals that it started, then waits until the test releases it."""
    current = _enter(name)
    try:
        current.started.set()
        if not current.release.wait(timeout=10):
            raise RuntimeError("the test never released the task")
    finally:
        _leave(current)
    return name


@keel.task
def overrun(seconds: float) -> str:
    """Ignores its timeout (a sync task's thread cannot be stopped), then returns."""
    time.sleep(seconds)
    return "too late"

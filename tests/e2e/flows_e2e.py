"""Workflows for the end-to-end tests of ``keel run`` and the commands that read runs back
(``tests/e2e/test_run_cli.py``).

The tests run them in ``python -m keel`` subprocesses, as ``tests/e2e/flows_e2e.py:NAME``
or as the module ``tests.e2e.flows_e2e:NAME``. Tasks report what they saw (their step
context, the types of their arguments, the order they met each other in) through their
outputs, so that a test can check it from the run's output and its history.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import keel

# --- a chain: parse_number -> add_ten -> describe -----------------------------------------


@keel.task
def parse_number(text: str) -> int:
    return int(text)


@keel.task
def add_ten(value: int) -> int:
    return value + 10


@keel.task
def describe(value: int, label: str) -> str:
    return f"{label}={value}"


@keel.workflow
def sequential(text: str, label: str = "total") -> str:
    """Three steps, each reading the one before."""
    return describe(add_ten(parse_number(text)), label)


# --- two branches that must run at the same time, then a join ------------------------------

#: both branches wait here; run one after the other, the first would time out and fail
BRANCH_BARRIER = threading.Barrier(2, timeout=10)


@keel.task
def seed(n: int) -> int:
    return n


@keel.task
def branch(value: int, factor: int) -> int:
    BRANCH_BARRIER.wait()  # BrokenBarrierError after 10 s unless the other branch arrives
    return value * factor


@keel.task
def join_pair(left: int, right: int) -> dict[str, int]:
    return {"left": left, "right": right, "sum": left + right}


@keel.workflow
def parallel(n: int) -> dict[str, int]:
    start = seed(n)
    left = branch.options(id="left")(start, 2)
    right = branch.options(id="right")(start, 3)
    return join_pair(left, right)


# --- a condition: a skipped branch, what depends only on it, and a join after both ---------


@keel.task
def double(x: int) -> int:
    return 2 * x


@keel.task
def bonus(value: int) -> int:
    return value + 1000


@keel.task
def announce(extra: int) -> str:
    return f"bonus {extra}"


@keel.task
def combine(base: int, extra: int | None) -> dict[str, int | None]:
    return {"base": base, "extra": extra}


@keel.workflow
def conditional(x: int) -> dict[str, Any]:
    base = double(x)
    with keel.when(base > 100):
        extra = bonus(base)
    followup = announce(extra)  # reads only the guarded step: skipped along with it
    return {"combined": combine(base, extra), "followup": followup}


# --- maps over a list computed upstream ----------------------------------------------------


@keel.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@keel.task
def square_late(x: int, n: int) -> int:
    time.sleep((n - x) * 0.02)  # later items end first: the output must still be in order
    return x * x


@keel.task
def tag(x: int) -> str:
    time.sleep(0.01)
    return f"item-{x}"


@keel.workflow
def mapping(n: int) -> dict[str, Any]:
    items = numbers(n)
    squares = keel.map(square_late, items, args={"n": n})
    tags = keel.map(tag, items, max_parallel=2, id="capped")
    return {"squares": squares, "tags": tags}


# --- failure and retries ------------------------------------------------------------------


@keel.task
def check_amount(amount: int) -> int:
    if amount < 0:
        raise ValueError(f"amount must not be negative, got {amount}")
    return amount


@keel.task
def book(amount: int) -> str:
    return f"booked {amount}"


@keel.workflow
def failing(amount: int) -> str:
    return book(check_amount(amount))


@keel.task(retry=keel.RetryPolicy(max_attempts=3, initial_backoff=0.2, jitter=0.1))
def flaky(x: int) -> dict[str, int]:
    attempt = keel.context().attempt
    if attempt < 3:
        raise ConnectionError(f"attempt {attempt} failed")
    return {"x": x, "attempt": attempt}


@keel.workflow
def retrying(x: int) -> dict[str, int]:
    return flaky(x)


# --- policies: a timeout on a sync task, an error type that is never retried ---------------


@keel.task(timeout="0.5s")
def overrun() -> str:
    time.sleep(2)  # four times its timeout: the attempt should end as timed out
    return "overran"


@keel.workflow
def sync_timeout() -> str:
    return overrun()


@keel.task(timeout="0.5s")
def ignores_timeout() -> str:
    time.sleep(600)  # its thread cannot be stopped; keel run must not wait for it
    return "never seen"


@keel.workflow
def abandons_a_thread() -> int:
    """The timed-out step may fail (on_failure="continue"): the run succeeds at once."""
    ignores_timeout.options(on_failure="continue")()
    return add_ten(1)


# the timeout counts from the start of the body (not the child process), so 3 s is ample
@keel.task(timeout="3s", isolation="process")
def hang(pid_file: str) -> str:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)  # far past its timeout: only killing the process ends it
    return "hung"


@keel.workflow
def process_timeout(pid_file: str) -> str:
    return hang(pid_file)


@keel.task
def slow_step() -> str:
    time.sleep(3)
    return "too late"


@keel.workflow(deadline="1s")
def past_deadline() -> str:
    return slow_step()


@keel.task
def charge(amount: int) -> str:
    raise ConnectionError(f"the card service refused {amount}")


@keel.task
def tell_ops(error: dict[str, Any]) -> str:
    return f"ops told: {error['type']} after {error['attempts']} attempt(s)"


@keel.workflow
def handled_failure(amount: int) -> dict[str, Any]:
    charged = charge.options(on_failure="tell_ops", retries=1, retry=keel.RetryPolicy(
        initial_backoff=0))(amount)  # fmt: skip
    told = tell_ops.options(id="tell_ops")()
    return {"charged": charged, "told": told}


@keel.task(retry=keel.RetryPolicy(max_attempts=3, initial_backoff=0, never_retry_on=("KeyError",)))
def lookup(key: str) -> str:
    raise KeyError(key)


@keel.workflow
def never_retried(key: str) -> str:
    return lookup(key)


# --- results: not JSON, and pydantic models ------------------------------------------------


class Opaque:
    """Not JSON in any way."""


@keel.task(retries=2)
def opaque_set() -> list[str]:  # the annotation promises JSON; the result is not
    return {Opaque(), Opaque()}  # type: ignore[return-value]


@keel.workflow
def not_json_set() -> list[str]:
    return opaque_set()


@keel.task
def bare_object() -> Any:
    return object()


@keel.workflow
def not_json_object() -> Any:
    return bare_object()


class Point(BaseModel):
    x: int
    y: int


@keel.task
def make_point(x: int, y: int) -> Point:
    return Point(x=x, y=y)


@keel.task
def typed_use(point: Point) -> dict[str, Any]:
    return {"type": type(point).__name__, "sum": point.x + point.y}


@keel.task
def raw_use(point: dict[str, Any]) -> dict[str, Any]:
    return {"type": type(point).__name__, "keys": sorted(point)}


@keel.task
def field_use(x: int) -> int:
    return x * 100


@keel.workflow
def models(x: int, y: int) -> dict[str, Any]:
    point = make_point(x, y)
    return {"typed": typed_use(point), "raw": raw_use(point), "field": field_use(point.x)}


# --- async tasks that must overlap ---------------------------------------------------------

#: both async tasks wait here (asyncio.Barrier binds to the loop that first uses it)
ASYNC_BARRIER = asyncio.Barrier(2)


@keel.task
async def async_fetch(name: str) -> dict[str, Any]:
    arrival = await asyncio.wait_for(ASYNC_BARRIER.wait(), timeout=10)
    await asyncio.sleep(0)
    return {"name": name, "arrival": arrival}


@keel.task
async def async_merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"names": [first["name"], second["name"]],
            "arrivals": sorted([first["arrival"], second["arrival"]])}  # fmt: skip


@keel.workflow
def async_flow() -> dict[str, Any]:
    first = async_fetch.options(id="fetch_a")("a")
    second = async_fetch.options(id="fetch_b")("b")
    return async_merge(first, second)


# --- the step context -----------------------------------------------------------------------


@keel.task
def whoami(label: str, ctx: keel.StepContext) -> dict[str, Any]:
    return {
        "label": label,
        "run_id": ctx.run_id,
        "workflow": ctx.workflow,
        "node": ctx.node,
        "attempt": ctx.attempt,
        "item": ctx.item,
        "key": ctx.idempotency_key,
        "is_current": keel.context() is ctx,
    }


@keel.workflow
def context_flow(labels: list[str]) -> dict[str, Any]:
    return {"single": whoami("one"), "items": keel.map(whoami, labels, id="each")}


# --- input -----------------------------------------------------------------------------------


@keel.task
def greet(name: str, times: int, punctuation: str) -> str:
    return " ".join([f"hello {name}"] * times) + punctuation


@keel.workflow
def greeting(name: str, times: int = 1, punctuation: str = "!") -> str:
    return greet(name, times, punctuation)


# --- a step that blocks until a file appears (for cancel) -------------------------------------


@keel.task
def wait_for_release(folder: str) -> str:
    # who runs it, written whole (renamed into place) so a reader never sees half of it
    started = {"pid": os.getpid(), "key": keel.context().idempotency_key}
    Path(folder, "started.tmp").write_text(json.dumps(started), encoding="utf-8")
    os.replace(Path(folder, "started.tmp"), Path(folder, "started"))
    release = Path(folder, "release")
    deadline = time.monotonic() + 30  # a safety net: the test creates the file
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("nobody created the release file within 30 s")
        time.sleep(0.02)
    return "released"


@keel.task
def after_release(status: str) -> str:
    return f"after {status}"


@keel.workflow
def gated(folder: str) -> str:
    return after_release(wait_for_release(folder))


# --- manual recovery: a step that fails until a file appears; a failing compensation -------


@keel.task
def first_step(marker: str) -> str:
    return f"first saw {Path(marker).exists()}"


@keel.task(retry=keel.RetryPolicy(max_attempts=1))
def needs_marker(marker: str, before: str) -> str:
    if not Path(marker).exists():
        raise FileNotFoundError(f"{marker} is missing")
    return f"{before}; marker found"


@keel.task
def last_step(value: str) -> str:
    return value.upper()


@keel.workflow
def fix_and_retry(marker: str) -> str:
    return last_step(needs_marker(marker, first_step(marker)))


@keel.task(retries=1, retry=keel.RetryPolicy(initial_backoff=0))
def refund_fails(output: str) -> str:
    raise RuntimeError(f"cannot undo {output}")


@keel.task(compensate=refund_fails)
def take_money() -> str:
    return "took 10"


@keel.task
def ship(paid: str) -> str:
    raise RuntimeError("the warehouse is closed")


@keel.workflow
def undo_fails() -> str:
    return ship(take_money())


# --- notifications: a webhook told of a failure (the test serves the URL) --------------------


@keel.task(retries=1, retry=keel.RetryPolicy(initial_backoff=0))
def always_down() -> str:
    raise ConnectionError("the partner API is down")


@keel.workflow(
    notify=[
        keel.WebhookNotifier(
            url=os.environ.get("KEEL_TEST_WEBHOOK", "http://127.0.0.1:9/hook"),
            headers={"X-Team": "payments"}, on=("run_failed", "retry_exhausted"), backoff=0,
        )
    ]
)  # fmt: skip
def notified() -> str:
    return always_down()


@keel.task
def note_thread(seen: list[str]) -> list[str]:
    """The names of the threads the chain's steps ran on so far, this one's added."""
    import threading

    return [*seen, threading.current_thread().name]


@keel.workflow
def threads_seen() -> list[str]:
    """Six steps in a chain: the first three prove the task fast, the rest may run on
    the worker's own thread."""
    seen: Any = note_thread([])
    for _ in range(5):
        seen = note_thread(seen)
    return seen

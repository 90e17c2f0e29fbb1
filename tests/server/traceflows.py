"""A workflow whose tasks report the trace context they run in, one per way a task runs:
a sync task (on a task thread, or on the worker's own thread once proven fast), one that
fails its first attempt and is retried (on a queue of its own), an ``async def`` task
(on the asyncio loop) and one in a child process (``isolation="process"``).

Each returns what it saw: the ``traceparent`` of the current OpenTelemetry span and
``ctx.traceparent``; the tests compare both with the attempt spans the worker made."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

import keel
from keel.runtime.tracing.context import traceparent_of
from keel.spec import RetryPolicy
from keel.store.protocol import Store

#: retried at once: the run does not wait for a backoff
AT_ONCE = RetryPolicy(max_attempts=2, initial_backoff=0, max_backoff=0, jitter=0)


def seen() -> dict[str, Any]:
    """The trace context the running task sees, both ways."""
    current = trace.get_current_span().get_span_context()
    return {"current": traceparent_of(current) if current.is_valid else None,
            "ctx": keel.context().traceparent}  # fmt: skip


@keel.task
def first(n: int) -> dict[str, Any]:
    return seen()


@keel.task(retry=AT_ONCE, queue="tracing")
def flaky(before: dict[str, Any]) -> dict[str, Any]:
    if keel.context().attempt == 1:
        raise ConnectionError("the first attempt fails")
    return seen()


@keel.task
async def later(before: dict[str, Any]) -> dict[str, Any]:
    return seen()


@keel.task(isolation="process")
def apart(before: dict[str, Any]) -> dict[str, Any]:
    return seen()


@keel.workflow
def traced(n: int) -> Any:
    a = first(n)
    b = flaky(a)
    c = later(b)
    return apart(c)


#: the nodes of ``traced``, in order
NODES = ("first", "flaky", "later", "apart")


def deploy_traced(store: Store) -> None:
    store.deploy([(traced.spec, "tests/server/traceflows.py")], 1.0, by="setup")


@keel.workflow
def inner(n: int) -> Any:
    return first(n)


@keel.workflow
def outer(n: int) -> Any:
    """A parent run whose child run (``inner``) is in its trace, under its run span."""
    return inner(n=n)

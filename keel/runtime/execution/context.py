"""The context of one attempt: which run, node and attempt it is, its idempotency key,
a logger bound to them, and its trace context. Tasks get it from ``keel.context()`` or
by declaring a parameter annotated ``StepContext``; it lives in a ``ContextVar``, so
threads and asyncio tasks each see their own."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from opentelemetry import trace

from keel.errors import KeelError
from keel.runtime.tracing.context import traceparent_of

if TYPE_CHECKING:
    from keel.store.protocol import Store

_current: ContextVar[StepContext] = ContextVar("keel_step_context")


@dataclass(frozen=True, slots=True)
class StepContext:
    run_id: str
    workflow: str
    node: str
    attempt: int
    #: the item's index when this attempt is one item of a map
    item: int | None = None
    #: the attempt's span (``keel.runtime.tracing.attempts``), current while the task
    #: runs: ``opentelemetry.trace.get_current_span()`` is this one, so the spans a task
    #: makes and the calls it makes with instrumented clients join the run's trace. In
    #: a child process (``isolation="process"``) it stands for the worker's span. None
    #: for a context made by hand.
    span: trace.Span | None = None
    #: the worker's store, for keel's own steps that record what they do as they go
    #: (``keel.llm`` writes each model request before it is sent); None in a context
    #: made by hand or in a child process
    store: Store | None = None

    @property
    def traceparent(self) -> str | None:
        """The attempt's span as a W3C ``traceparent`` header, to continue the trace in
        a call the task makes by hand (None without a span)."""
        return None if self.span is None else traceparent_of(self.span.get_span_context())

    @property
    def trace_id(self) -> str | None:
        """The run's trace id (32 hex digits), e.g. to log beside the task's own lines."""
        return None if self.span is None else trace.format_trace_id(
            self.span.get_span_context().trace_id)  # fmt: skip

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger named after the node (``keel.task.<node>``) that adds the run, node,
        attempt (and a map's item) to each record; a worker keeps its lines with the
        attempt (``keel.runtime.execution.task_logs``). Made when a task asks for it:
        most never log, and a step is too short to make one for nothing."""
        return bound_logger(self.run_id, self.node, self.attempt, self.item)

    @property
    def idempotency_key(self) -> str:
        """``run_id:node:attempt`` (``run_id:node[item]:attempt`` for a map item).

        Stable across re-executions of the same attempt (after a crash, the attempt runs
        again with the same key), so an external system can drop the duplicate.
        """
        return f"{self.step_key}:{self.attempt}"

    @property
    def step_key(self) -> str:
        """``run_id:node`` (``run_id:node[item]`` for a map item): the same for every
        attempt of the step, for a system that should see a retry as the same request
        (an ``http`` step's ``Idempotency-Key``: a POST retried after a timeout that did
        arrive is then dropped by a server that honours the key)."""
        node = self.node if self.item is None else f"{self.node}[{self.item}]"
        return f"{self.run_id}:{node}"


@lru_cache(maxsize=1024)
def _task_logger(node: str) -> logging.Logger:
    # getLogger takes logging's module lock; once per node is enough
    return logging.getLogger(f"keel.task.{node}")


def bound_logger(
    run_id: str, node: str, attempt: int, item: int | None = None
) -> logging.LoggerAdapter[logging.Logger]:
    extra: dict[str, object] = {"run_id": run_id, "node": node, "attempt": attempt}
    if item is not None:  # one item of a map
        extra["item"] = item
    return logging.LoggerAdapter(_task_logger(node), extra)


def context() -> StepContext:
    """The context of the attempt running now; only valid inside a task run by keel."""
    try:
        return _current.get()
    except LookupError:
        raise KeelError(
            "keel.context() is only available inside a task that keel is running "
            "(calling the task directly just calls the function)"
        ) from None

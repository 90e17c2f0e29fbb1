"""A span per attempt, made by the worker that executes it, as a child of its run's span.

The worker starts the span as it hands the attempt to where it runs (a task thread, the
asyncio loop, its own thread, a child process) and ends it when the outcome comes back,
whichever thread that is on (``ending``); the span is the current one while the task's
code runs (``Invocation``), so what the task does joins the trace.

The span is made by the process's ``recorder``: the tracer of a provider its user
configured, or, where keel installed the provider itself, the ``direct`` recorder, which
makes the same span for a fraction of the SDK tracer's cost. With no SDK configured the
tracer is OpenTelemetry's no-op: the "span" is the run span's context itself (what
``ctx.traceparent`` then gives), nothing is recorded, and ``ending`` hands back the
worker's callback unchanged, so an attempt pays a dictionary and a call. An attempt of
a run whose trace is not sampled gets the same, without asking the SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from keel.engine.events import ErrorInfo
from keel.runtime.tracing import recorder
from keel.runtime.tracing.context import run_span

Key = TypeVar("Key")


class EndOfAttempt(Protocol):
    """What an attempt's outcome (``keel.runtime.execution.invoke.Outcome``) has that
    its span needs."""

    @property
    def error(self) -> ErrorInfo | None: ...


Ended = TypeVar("Ended", bound=EndOfAttempt)


def start_attempt(
    run_id: str,
    workflow: str,
    node: str,
    attempt: int,
    item: int | None,
    queue: str,
    recorded: Mapping[str, str] | None,
) -> trace.Span:
    """The attempt's span, in the trace ``recorded`` (``RunStarted.trace``) names; in a
    run whose trace is not sampled, the run span's stand-in (nothing is recorded: the
    decision was taken once, when the run started, and every worker follows it)."""
    run = run_span(recorded, run_id)
    if not run.sampled:
        return run.span
    attributes: dict[str, Any] = {"keel.run_id": run_id, "keel.workflow": workflow,
                                  "keel.node": node, "keel.attempt": attempt,
                                  "keel.queue": queue}  # fmt: skip
    if item is not None:
        attributes["keel.item"] = item
    return recorder.of(trace.get_tracer_provider()).attempt(
        f"{workflow}.{node}", run.context, run.span_context, attributes
    )


def ending(span: trace.Span, on_done: Callable[[Key, Ended], None]) -> Callable[[Key, Ended], None]:
    """``on_done`` that first ends the attempt's span with the outcome (its ``error``, if
    any, marks the span failed); ``on_done`` itself when the span records nothing."""
    if not span.is_recording():
        return on_done

    def done(key: Key, outcome: Ended) -> None:
        if outcome.error is not None:
            failed(span, outcome.error)
        span.end()
        on_done(key, outcome)

    return done


def failed(span: trace.Span, error: ErrorInfo) -> None:
    """Mark ``span`` failed with the attempt's error: its status (the error's type), the
    ``error.type`` attribute, and an ``exception`` event with the message and traceback."""
    span.set_status(Status(StatusCode.ERROR, error.type))
    span.set_attribute("error.type", error.type)
    span.add_event("exception", {"exception.type": error.type,
                                 "exception.message": error.message,
                                 "exception.stacktrace": error.traceback})  # fmt: skip

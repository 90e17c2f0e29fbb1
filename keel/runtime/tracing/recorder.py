"""What makes keel's spans: an attempt's (``attempts``) and a run's (``run_spans``).

Two implementations of one small interface, ``Recorder``:

- ``ApiRecorder``: through the OpenTelemetry API, a tracer of the process's provider,
  whatever it is (one a program embedding keel configured, or none: then every span is
  a no-op). What it gives is what that provider makes.
- ``keel.runtime.tracing.direct``: for a provider keel installed itself (``keel worker``,
  ``keel serve``, the benchmarks): the same spans, built at the attempt's end and handed
  to the span processors keel gave that provider, at a fraction of the SDK's cost per
  span. Such a provider carries its recorder (``keel_recorder``); ``of`` finds it.

This module uses only the API: keel works, and traces through a provider of its
user's, without the SDK installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from types import ModuleType
from typing import Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from keel.runtime.tracing.context import RunTrace

__all__ = ["ApiRecorder", "Recorder", "ended", "of", "outside"]

#: an attempt's attributes, or a run's (``keel.*``)
Attributes = Mapping[str, AttributeValue]


class Recorder(Protocol):
    def attempt(
        self,
        name: str,
        context: otel_context.Context,
        parent: trace.SpanContext,
        attributes: Attributes,
    ) -> trace.Span:
        """An attempt's span, started now as a child of the span current in ``context``
        (the run span's stand-in, in a sampled run), whose span context ``parent`` is;
        ended by its ``end``."""

    def run(
        self,
        name: str,
        recorded: RunTrace,
        attributes: Attributes,
        start_ns: int,
        end_ns: int,
        error: str | None,
    ) -> None:
        """A run's span, made after the fact with the ids ``recorded`` holds, failed with
        ``error`` as its status' description unless None."""


def of(provider: trace.TracerProvider) -> Recorder:
    """The recorder of spans made through ``provider`` (the process's, as
    ``trace.get_tracer_provider()`` gives it at the time)."""
    own: Recorder | None = getattr(provider, "keel_recorder", None)
    return own if own is not None else _api_recorder(provider)


class ApiRecorder:
    """Spans through ``provider``'s tracers, found once per provider, not per span: the
    SDK makes a new tracer at each ask, which costs as much as starting the span."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.tracer = provider.get_tracer("keel")
        self._provider = provider
        #: the tracer of run spans, and ``exact_ids`` if it can give them their ids:
        #: found at the first run span (``exact_ids`` imports the SDK, which a process
        #: with no provider, whose attempts come here too, need never import)
        self._runs: tuple[trace.Tracer, ModuleType | None] | None = None

    def attempt(
        self,
        name: str,
        context: otel_context.Context,
        parent: trace.SpanContext,
        attributes: Attributes,
    ) -> trace.Span:
        return self.tracer.start_span(name, context=context, attributes=attributes)

    def run(
        self,
        name: str,
        recorded: RunTrace,
        attributes: Attributes,
        start_ns: int,
        end_ns: int,
        error: str | None,
    ) -> None:
        """With the recorded ids when the tracer is the SDK's (``exact_ids``); else as a
        child of the recorded run span (a synthetic parent: the trace id is the run's all
        the same, the span id a new one)."""
        if self._runs is None:
            runs = self._provider.get_tracer("keel.runs")
            self._runs = (runs, _exact_ids(runs))
        tracer, exact = self._runs
        parent = recorded.parent_context() if exact is not None else recorded.span_context()
        with nullcontext() if exact is None else exact.preset(recorded.trace_id, recorded.span_id):
            span = tracer.start_span(name, context=outside(parent), attributes=attributes,
                                     start_time=start_ns)  # fmt: skip
        ended(span, end_ns, error)


def outside(parent: trace.SpanContext | None) -> otel_context.Context:
    """The context a run's span starts in: ``parent`` as its current span, never the span
    current here (the run's span hangs from what its run recorded, and only that)."""
    context = otel_context.Context()
    if parent is None:
        return context
    return trace.set_span_in_context(trace.NonRecordingSpan(parent), context)


def ended(span: trace.Span, end_ns: int, error: str | None) -> None:
    """End a run's span at ``end_ns``, failed with ``error`` as its status' description
    unless None."""
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_ns)


def _exact_ids(tracer: trace.Tracer) -> ModuleType | None:
    """``exact_ids`` when ``tracer`` can give run spans their recorded ids (the SDK's)."""
    try:
        from keel.runtime.tracing import exact_ids
    except ImportError:  # the API without the SDK
        return None
    return exact_ids if exact_ids.takes_ids(tracer) else None


class _ApiRecorders:
    """The ``ApiRecorder`` of the last provider asked about (there is one per process,
    but a test may set another)."""

    def __init__(self) -> None:
        self._last: tuple[trace.TracerProvider, ApiRecorder] | None = None

    def of(self, provider: trace.TracerProvider) -> ApiRecorder:
        last = self._last  # one read: another thread may replace it meanwhile
        if last is None or last[0] is not provider:
            last = self._last = (provider, ApiRecorder(provider))
        return last[1]


_api_recorder = _ApiRecorders().of

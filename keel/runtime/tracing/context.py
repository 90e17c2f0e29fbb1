"""A run's trace context: the ids every span of the run hangs from.

A run lasts days and its attempts run in any process on any host, so no span is held
open for it. Its trace context is fixed once, when it starts, and recorded in
``RunStarted.trace``: the trace id, the run span's id and, when something started it
inside a trace (a ``traceparent`` received by the API, the current span of the process
that called ``start_run``, a parent run), that span's id as the run span's parent.
Every attempt's span is a child of the run span, made by whichever worker executes it
(``attempts``); the run span itself is emitted when the run ends (``run_spans``).

The run span's id, and the trace id of a run started outside any trace, are derived from
the run id (a hash), so a run started before runs recorded a trace context gets the same
ids in every process that reads it (``of_run``).

Only W3C Trace Context is spoken (``traceparent``), whatever propagators the process has
configured: it is what the API documents and what ``keel.Client`` sends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()
#: the flags of a run started outside any trace: sampled (its spans are recorded)
_SAMPLED = 0x01


@dataclass(frozen=True, slots=True)
class RunTrace:
    """The trace context of one run, as ids (ints, as OpenTelemetry keeps them)."""

    trace_id: int
    #: the run span's id: the parent of every attempt's span
    span_id: int
    #: W3C trace flags (bit 0: sampled) of the trace the run belongs to
    flags: int = _SAMPLED
    #: the span that started the run (a caller's, a parent run's), if any
    parent_id: int | None = None

    def to_data(self) -> dict[str, str]:
        """As ``RunStarted.trace`` keeps it: lowercase hex, as in a ``traceparent``."""
        data = {
            "trace_id": trace.format_trace_id(self.trace_id),
            "span_id": trace.format_span_id(self.span_id),
            "flags": f"{self.flags:02x}",
        }
        if self.parent_id is not None:
            data["parent_id"] = trace.format_span_id(self.parent_id)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, str]) -> RunTrace:
        parent = data.get("parent_id")
        return cls(
            int(data["trace_id"], 16),
            int(data["span_id"], 16),
            int(data.get("flags", "01"), 16),
            None if parent is None else int(parent, 16),
        )

    @property
    def sampled(self) -> bool:
        """Whether the run's spans are recorded (decided once, when it started)."""
        return bool(self.flags & _SAMPLED)

    @property
    def traceparent(self) -> str:
        """The run span as a W3C ``traceparent`` header."""
        return traceparent_of(self.span_context())

    def span_context(self) -> trace.SpanContext:
        """The run span's context (remote: it lives in the history, not in this process)."""
        return trace.SpanContext(self.trace_id, self.span_id, is_remote=True,
                                 trace_flags=trace.TraceFlags(self.flags))  # fmt: skip

    def parent_context(self) -> trace.SpanContext | None:
        if self.parent_id is None:
            return None
        return trace.SpanContext(self.trace_id, self.parent_id, is_remote=True,
                                 trace_flags=trace.TraceFlags(self.flags))  # fmt: skip


def _derived(run_id: str) -> tuple[int, int]:
    """A trace id and a span id for the run, the same in every process (never zero:
    W3C reads an all-zero id as no id)."""
    digest = hashlib.sha256(b"keel.run:" + run_id.encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


def new_run_trace(run_id: str, parent: trace.SpanContext | None = None) -> RunTrace:
    """The trace context of a run starting now: in ``parent``'s trace, as its child,
    when ``parent`` is a valid span context; else a trace of its own."""
    trace_id, span_id = _derived(run_id)
    if parent is None or not parent.is_valid:
        return RunTrace(trace_id, span_id)
    return RunTrace(parent.trace_id, span_id, int(parent.trace_flags), parent.span_id)


def started_trace(run_id: str, workflow: str) -> RunTrace:
    """The trace context of a run starting now, in this thread: in the trace of the span
    current here, if any; else a trace of its own, which the process's sampler (an SDK's,
    when one is configured) records or not. The run's flags say so to every process
    that executes it, so a ratio sampler keeps or drops whole runs."""
    parent = caller()
    if parent is not None:
        return new_run_trace(run_id, parent)
    own = new_run_trace(run_id)
    if _sampled(own.trace_id, f"run {workflow}"):
        return own
    return RunTrace(own.trace_id, own.span_id, own.flags & ~_SAMPLED)


def _sampled(trace_id: int, name: str) -> bool:
    """Whether this process's sampler records a new trace with this id (True without one:
    the API alone records nothing, and the processes that do decide by the flags)."""
    provider = trace.get_tracer_provider()
    own: Any = getattr(provider, "keel_recorder", None)  # a provider keel installed (``direct``)
    if own is not None and own.root_sampled:
        return True  # its sampler's answer for every new trace, known without asking it
    sampler: Any = getattr(provider, "sampler", None)
    if sampler is None:
        return True
    try:
        return bool(sampler.should_sample(None, trace_id, name).decision.is_sampled())
    except Exception:  # a sampler that fails: record, as without one
        return True


def child_run_trace(parent: RunTrace, run_id: str) -> RunTrace:
    """A child run's trace context: in its parent run's trace, under the parent's run span."""
    return RunTrace(parent.trace_id, _derived(run_id)[1], parent.flags, parent.span_id)


def of_run(recorded: Mapping[str, str] | None, run_id: str) -> RunTrace:
    """A run's trace context, as ``RunStarted.trace`` recorded it; derived from the run id
    for a run started before runs recorded one."""
    if recorded is None:
        return new_run_trace(run_id)
    return RunTrace.from_data(recorded)


def trace_id_of(recorded: Mapping[str, str] | None, run_id: str) -> str:
    """A run's trace id as logs and ``keel show`` give it (32 hex digits), from
    ``RunStarted.trace``; derived from the run id for a run started before runs recorded
    one, as ``of_run`` does."""
    if recorded is not None:
        return recorded["trace_id"]
    return trace.format_trace_id(new_run_trace(run_id).trace_id)


def caller() -> trace.SpanContext | None:
    """The span current in this thread (the caller's, or what ``continued`` attached),
    when there is a valid one: a run started now joins its trace."""
    found = trace.get_current_span().get_span_context()
    return found if found.is_valid else None


def traceparent_of(span_context: trace.SpanContext) -> str:
    """A span context as a W3C ``traceparent`` header value."""
    trace_id = trace.format_trace_id(span_context.trace_id)
    span_id = trace.format_span_id(span_context.span_id)
    return f"00-{trace_id}-{span_id}-{int(span_context.trace_flags):02x}"


def parsed(traceparent: str | None) -> trace.SpanContext | None:
    """The span context a ``traceparent`` header names; None when it is absent or not a
    valid W3C ``traceparent`` (a bad header is ignored, as W3C asks: the run starts a
    trace of its own)."""
    if not traceparent:
        return None
    found = trace.get_current_span(_W3C.extract({"traceparent": traceparent})).get_span_context()
    return found if found.is_valid else None


@contextmanager
def continued(traceparent: str | None) -> Iterator[None]:
    """Make the span a ``traceparent`` names the current one while the block runs, so a
    run started in it joins that trace; nothing changes when the header is absent or
    invalid, or when a span is current already (an instrumented server made one for the
    request: the run becomes its child, and so still joins the caller's trace)."""
    found = parsed(traceparent)
    if found is None or caller() is not None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(found)))
    try:
        yield
    finally:
        otel_context.detach(token)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current span's ``traceparent`` to ``headers`` (when a span is current)."""
    _W3C.inject(headers)
    return headers


class RunSpan(NamedTuple):
    """A run's span as its attempts' spans hang from it (a stand-in: the run span is
    emitted when the run ends)."""

    #: an OpenTelemetry context whose current span it is, to start an attempt's span in
    context: otel_context.Context
    #: the stand-in itself, and its span context
    span: trace.Span
    span_context: trace.SpanContext
    #: whether the run's spans are recorded (decided when it started)
    sampled: bool


def run_span(recorded: Mapping[str, str] | None, run_id: str) -> RunSpan:
    """The run's span, from what ``RunStarted.trace`` recorded (derived from the run id
    for a run that recorded nothing)."""
    if recorded is None:
        recorded = new_run_trace(run_id).to_data()
    return _run_span(recorded["trace_id"], recorded["span_id"], recorded.get("flags", "01"))


@lru_cache(maxsize=4096)
def _run_span(trace_id: str, span_id: str, flags: str) -> RunSpan:
    """Cached by the recorded text: every attempt of a run hangs from the same span, and
    the ids need not be parsed again for each."""
    flags_ = trace.TraceFlags(int(flags, 16))
    found = trace.SpanContext(int(trace_id, 16), int(span_id, 16), True, flags_)
    span = trace.NonRecordingSpan(found)
    context = trace.set_span_in_context(span, otel_context.Context())
    return RunSpan(context, span, found, flags_.sampled)

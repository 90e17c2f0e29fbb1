"""Run spans with the ids their run recorded, through the SDK's id generator.

The OpenTelemetry API has no way to choose a span's ids; the SDK's tracer asks its
``id_generator`` for them. The tracer ``run_spans`` uses (scope ``keel.runs``, used by
nothing else) gets a generator that hands out preset ids while a run span starts
(``preset``), and its own generator's otherwise. Imported only when a tracer provider
is configured, and only where the SDK is installed (the ``otel`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import IdGenerator

#: (trace id, span id) that the span starting now in this thread must get
_preset: ContextVar[tuple[int, int] | None] = ContextVar("keel_run_span_ids", default=None)


class RecordedIds(IdGenerator):
    def __init__(self, own: IdGenerator) -> None:
        self.own = own

    def generate_span_id(self) -> int:
        preset = _preset.get()
        return self.own.generate_span_id() if preset is None else preset[1]

    def generate_trace_id(self) -> int:
        preset = _preset.get()
        return self.own.generate_trace_id() if preset is None else preset[0]


def takes_ids(tracer: trace.Tracer) -> bool:
    """Whether ``tracer`` is the SDK's: then it is given ``RecordedIds`` (once)."""
    if not isinstance(tracer, SdkTracer):
        return False
    if not isinstance(tracer.id_generator, RecordedIds):
        tracer.id_generator = RecordedIds(tracer.id_generator)
    return True


@contextmanager
def preset(trace_id: int, span_id: int) -> Iterator[None]:
    """Spans started in the block by a tracer that ``takes_ids`` get these ids (the
    trace id only when they have no parent)."""
    token = _preset.set((trace_id, span_id))
    try:
        yield
    finally:
        _preset.reset(token)

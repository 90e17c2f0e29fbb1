"""What ``--metrics`` and ``--tracing`` turn on in a measured process: the cost of
observing a worker, measured against the same workload without it.

``--tracing`` installs the OpenTelemetry SDK as a production worker has it (``keel
worker`` with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set: ``keel.runtime.tracing.sdk``): a
``KeelTracerProvider`` with a ``KeelBatchSpanProcessor``, every span of every run recorded (or,
with ``--sample RATIO``, the runs a parent-based ratio sampler keeps). Its exporter
discards what it is given, so no network nor collector is measured, only keel and the
SDK; it counts the spans, so a measurement says how many were really recorded. (A real
OTLP exporter adds its encoding, in the batch processor's thread: not measured here.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Observing:
    """What the measured workers of this process are given, and what tracing recorded."""

    metrics: bool = False
    #: the share of runs traced (1.0: every span), None: no tracing configured
    tracing: float | None = None
    _provider: Any = None
    _exporter: Any = None

    def new_metrics(self) -> Any:
        """Metrics for a measured worker to count into (None: it counts nothing)."""
        if not self.metrics:
            return None
        from keel.runtime.metrics import Metrics

        return Metrics()

    def install(self) -> None:
        """Configure tracing, before anything is measured (as ``keel worker`` does first)."""
        if self.tracing is None:
            return
        from opentelemetry import trace
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        from keel.runtime.tracing.batching import KeelBatchSpanProcessor
        from keel.runtime.tracing.direct import KeelTracerProvider

        self._exporter = _discarding()
        # every span: the SDK's default sampler (parent-based, always on), as in production
        whole = self.tracing >= 1.0
        sampler = None if whole else ParentBased(TraceIdRatioBased(self.tracing))
        self._provider = KeelTracerProvider(sampler=sampler)
        self._provider.add_span_processor(KeelBatchSpanProcessor(self._exporter))
        trace.set_tracer_provider(self._provider)

    def flush(self) -> None:
        """Hand every span ended so far to the exporter, so its cost is in the measured
        time (without tracing: nothing)."""
        if self._provider is not None:
            self._provider.force_flush()

    def described(self) -> dict[str, Any]:
        """For the workload's JSON: what was on, and how many spans were exported."""
        out: dict[str, Any] = {}
        if self.metrics:
            out["metrics"] = True
        if self._provider is not None:
            self._provider.shutdown()
            out["tracing"] = self.tracing
            out["spans"] = self._exporter.spans
        return out


def _discarding() -> Any:
    """A span exporter that keeps nothing but the count of what it was given."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Discarding(SpanExporter):
        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    return Discarding()


#: the workers measured in this process (set from the command line)
OBSERVING = Observing()

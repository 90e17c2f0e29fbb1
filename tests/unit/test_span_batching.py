"""keel's batch span processor (``keel.runtime.tracing.batching``): spans of sampled
traces exported in batches by its thread, when a batch is full or the delay has passed;
the oldest dropped past the queue's size, and said so; what is queued exported at a
flush and at shutdown; the ``OTEL_BSP_*`` settings read as the SDK reads them; a forked
child exporting its own spans, not its parent's."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from keel.runtime.tracing import recorder
from keel.runtime.tracing.batching import KeelBatchSpanProcessor
from keel.runtime.tracing.direct import DirectRecorder, KeelTracerProvider

#: long enough that the delay never exports during a test that does not wait for it
NEVER = {"OTEL_BSP_SCHEDULE_DELAY": "600000"}


class Kept(SpanExporter):
    """The batches it was given, by span name; ``hold``, set, keeps an export waiting."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.shut = False
        self.exporting = threading.Event()
        self.hold: threading.Event | None = None
        self.given = threading.Condition()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exporting.set()
        if self.hold is not None:
            self.hold.wait(30)
        with self.given:
            self.batches.append([span.name for span in spans])
            self.given.notify_all()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shut = True

    def wait_for(self, found: Callable[[], bool]) -> None:
        with self.given:
            assert self.given.wait_for(found, timeout=30), self.batches


def span(name: str, sampled: bool = True) -> ReadableSpan:
    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else 0)
    return ReadableSpan(name, trace.SpanContext(1, 2, False, flags))


def test_a_full_batch_is_exported_by_the_thread_the_rest_at_a_flush() -> None:
    kept = Kept()
    processor = KeelBatchSpanProcessor(kept, {**NEVER, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "3"})
    for index in range(4):
        processor.on_end(span(f"s{index}"))
    kept.wait_for(lambda: len(kept.batches) >= 1)
    processor.force_flush()
    processor.shutdown()
    assert sorted(name for batch in kept.batches for name in batch) == ["s0", "s1", "s2", "s3"]
    assert all(len(batch) <= 3 for batch in kept.batches)
    assert kept.shut


def test_the_delay_exports_what_is_queued_without_a_full_batch() -> None:
    kept = Kept()
    processor = KeelBatchSpanProcessor(kept, {"OTEL_BSP_SCHEDULE_DELAY": "5"})
    processor.on_end(span("alone"))
    kept.wait_for(lambda: kept.batches == [["alone"]])
    processor.shutdown()


def test_spans_not_sampled_and_spans_after_shutdown_are_not_exported() -> None:
    kept = Kept()
    processor = KeelBatchSpanProcessor(kept, NEVER)
    processor.on_end(span("recorded only", sampled=False))
    processor.on_end(span("kept"))
    processor.shutdown()  # exports what is queued
    processor.on_end(span("too late"))
    assert kept.batches == [["kept"]]
    assert not processor.force_flush()


def test_past_the_queue_size_the_oldest_are_dropped_and_said_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept = Kept()
    kept.hold = threading.Event()
    settings = {**NEVER, "OTEL_BSP_MAX_QUEUE_SIZE": "2", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2"}
    processor = KeelBatchSpanProcessor(kept, settings)
    processor.on_end(span("a"))
    processor.on_end(span("b"))  # a full batch: the thread takes it, and waits in the export
    assert kept.exporting.wait(30)
    for name in ("c", "d", "e"):
        processor.on_end(span(name))
    kept.hold.set()
    processor.shutdown()
    assert kept.batches == [["a", "b"], ["d", "e"]]
    assert "dropped 1 spans" in caplog.text


def test_the_settings_are_the_sdks_and_a_bad_one_falls_back_to_its_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = {"OTEL_BSP_SCHEDULE_DELAY": "250", "OTEL_BSP_MAX_QUEUE_SIZE": "many",
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "-4"}  # fmt: skip
    processor = KeelBatchSpanProcessor(Kept(), settings)
    processor.shutdown()
    assert (processor.delay, processor.most, processor.batch) == (0.25, 2048, 512)
    assert "OTEL_BSP_MAX_QUEUE_SIZE=many: not a positive whole number; 2048 is used" in caplog.text
    small = KeelBatchSpanProcessor(Kept(), {"OTEL_BSP_MAX_QUEUE_SIZE": "8"})
    small.shutdown()
    assert small.batch == 8  # never more than the queue holds


def test_a_forked_child_exports_its_own_spans_not_its_parents() -> None:
    kept = Kept()
    processor = KeelBatchSpanProcessor(kept, NEVER)
    processor.on_end(span("parent's"))
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: one span of its own, exported by its own thread
        try:
            processor.on_end(span("child's"))
            processor.shutdown()
            os.write(write, repr(kept.batches).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as told:
        said = told.read()
    os.waitpid(child, 0)
    processor.shutdown()
    assert said == repr([["child's"]])
    assert kept.batches == [["parent's"]]


def test_a_provider_with_keels_processor_makes_its_spans_directly() -> None:
    provider = KeelTracerProvider()
    kept = Kept()
    provider.add_span_processor(KeelBatchSpanProcessor(kept, NEVER))
    found = recorder.of(provider)
    assert isinstance(found, DirectRecorder)
    parent = trace.SpanContext(5, 6, True, trace.TraceFlags(trace.TraceFlags.SAMPLED))
    found.attempt("w.n", trace.set_span_in_context(trace.NonRecordingSpan(parent)), parent,
                  {"keel.node": "n"}).end()  # fmt: skip
    provider.shutdown()
    assert kept.batches == [["w.n"]]

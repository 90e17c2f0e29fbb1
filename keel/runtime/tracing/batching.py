"""The span processor of the providers keel installs: the SDK's ``BatchSpanProcessor``'s
job, for less per span.

Spans are queued as they end and exported in batches by a thread of its own, every
``OTEL_BSP_SCHEDULE_DELAY`` ms and as soon as ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` are
queued; past ``OTEL_BSP_MAX_QUEUE_SIZE`` the oldest are dropped (and said so). The same
variables as the SDK's, the same defaults. The SDK's asks the process id at every span
to notice a fork (a system call each time), and goes through two more calls and an
``Event`` to queue one; here a span costs one call and an append, and a fork is told by
``os.register_at_fork``: the child starts with an empty queue and a thread of its own.
``OTEL_BSP_EXPORT_TIMEOUT`` is not read: the SDK's reads it and uses it for nothing (an
exporter has its own timeout: ``OTEL_EXPORTER_OTLP_TIMEOUT``).

Its ``on_start`` does nothing, as the SDK's: ``direct.DirectRecorder`` may make the spans.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Mapping

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["KeelBatchSpanProcessor"]

log = logging.getLogger("keel.tracing")

#: the SDK's defaults: ms between exports, spans queued at most, spans per export
DEFAULTS = {OTEL_BSP_SCHEDULE_DELAY: 5000, OTEL_BSP_MAX_QUEUE_SIZE: 2048,
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE: 512}  # fmt: skip
_SAMPLED = 0x01


class KeelBatchSpanProcessor(SpanProcessor):
    """Ended spans of sampled traces, handed to ``exporter`` in batches."""

    def __init__(self, exporter: SpanExporter, environ: Mapping[str, str] | None = None) -> None:
        """``environ``: where the ``OTEL_BSP_*`` settings are read (the process's)."""
        env = os.environ if environ is None else environ
        self.exporter = exporter
        self.delay = _setting(env, OTEL_BSP_SCHEDULE_DELAY) / 1000
        self.most = _setting(env, OTEL_BSP_MAX_QUEUE_SIZE)
        self.batch = min(_setting(env, OTEL_BSP_MAX_EXPORT_BATCH_SIZE), self.most)
        self._stopped = False
        self._begin()
        reference = weakref.ref(self)  # the fork hook must not keep a processor alive

        def forked() -> None:
            processor = reference()
            if processor is not None and not processor._stopped:
                processor._begin()

        os.register_at_fork(after_in_child=forked)

    def _begin(self) -> None:
        """An empty queue and the thread that exports it (again, in a forked child: the
        parent's spans are the parent's to export)."""
        self._queue: deque[ReadableSpan] = deque(maxlen=self.most)
        self._dropped = 0
        self._wake = threading.Event()
        self._woken = False
        self._exporting = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="KeelSpanExport", daemon=True)
        self._thread.start()

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if self._stopped or context is None or not context.trace_flags & _SAMPLED:
            return
        queue = self._queue
        if len(queue) == self.most:  # the oldest goes: the queue keeps the newest
            self._dropped += 1
        queue.append(span)
        if len(queue) >= self.batch and not self._woken:  # the thread exports them all
            self._woken = True
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export every span queued, now, on this thread."""
        if self._stopped:
            return False
        self._export()
        return True

    def shutdown(self) -> None:
        """Export what is queued, stop the thread (waiting 30 s at most, as the SDK's),
        then the exporter. Spans that end after are dropped."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._thread.join(30.0)
        self.exporter.shutdown()

    def _work(self) -> None:
        wake = self._wake
        while not self._stopped:
            wake.wait(self.delay)
            wake.clear()
            self._woken = False
            self._export()
        self._export()

    def _export(self) -> None:
        """Every span queued, in batches (and those that end meanwhile)."""
        with self._exporting:
            queue, size = self._queue, self.batch
            while queue:
                batch = [queue.popleft() for _ in range(min(size, len(queue)))]
                # what the exporter does (an HTTP request) is not itself traced
                token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
                try:
                    self.exporter.export(batch)
                except Exception:  # an exporter that fails loses its batch, not the thread
                    log.exception("could not export %d spans", len(batch))
                finally:
                    detach(token)
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                log.warning("dropped %d spans: more than %s=%d waited to be exported",
                            dropped, OTEL_BSP_MAX_QUEUE_SIZE, self.most)  # fmt: skip


def _setting(env: Mapping[str, str], name: str) -> int:
    """A positive whole number from ``name``, else its default (said in one line, as the
    SDK ignores a value it cannot use)."""
    default = DEFAULTS[name]
    text = env.get(name, "").strip()
    if not text:
        return default
    if text.isdigit() and int(text) > 0:
        return int(text)
    log.warning("%s=%s: not a positive whole number; %d is used", name, text, default)
    return default

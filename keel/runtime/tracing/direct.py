"""keel's spans made without the SDK's tracer, where keel installed the provider itself.

The SDK's tracer costs some 20 µs a span (a lock, bounded attributes, events and links,
the processors told at the start and at the end), a tenth of a chain's step. Where keel
installed the provider (``keel worker`` and ``keel serve``: ``sdk``; the benchmarks),
keel knows all that goes into a span: the provider's resource, sampler, id generator
and ``SpanLimits``, and the span processors keel added. ``KeelTracerProvider`` is that
provider: an SDK ``TracerProvider`` that remembers them, and gives a ``DirectRecorder``
(``keel_recorder``, which ``recorder.of`` looks for) that makes the same spans itself:

- an attempt's span: the sampler asked as the SDK asks it (or, for the default sampler
  under a run's sampled span, its answer known without asking), the ids from the
  provider's generator, the flags and trace state as the SDK sets them; while the
  attempt runs, a ``DirectSpan`` (a whole span: what the task writes to it is kept); at
  its end, the same object (a ``ReadableSpan`` too) handed to each processor's ``on_end``;
- a run's span: a ``DirectSpan`` with the ids its run recorded, made and ended at once.

Name, ids, parent, kind, attributes, events, status, times, resource and instrumentation
scope are the SDK's (``tests/unit/test_trace_recorders.py`` compares them). What is not
done: the SDK's own metrics of its spans (``otel.sdk.span.*``, off unless
``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``), and the processors' ``on_start``, which is
why the recorder is given only while every processor is keel's batch one (``batching``)
or the SDK's batch or simple one (their ``on_start`` does nothing): a provider given any
other processor, or disabled (``OTEL_SDK_DISABLED``), has no ``keel_recorder``, and
spans go through its tracer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from random import getrandbits
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.environment_variables import OTEL_SDK_DISABLED
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler

from keel.runtime.tracing.batching import KeelBatchSpanProcessor
from keel.runtime.tracing.context import RunTrace
from keel.runtime.tracing.direct_span import DirectSpan, Finish, span_type
from keel.runtime.tracing.recorder import Attributes, ended, outside

__all__ = ["DirectRecorder", "KeelTracerProvider"]

#: processors whose ``on_start`` (and ``_on_ending``) do nothing: a span they never see
#: start is theirs all the same
_PLAIN_PROCESSORS = (KeelBatchSpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)
_INTERNAL = trace.SpanKind.INTERNAL
_DROP, _RECORD_AND_SAMPLE = Decision.DROP, Decision.RECORD_AND_SAMPLE
_SAMPLED = trace.TraceFlags.SAMPLED
#: W3C level 2's random-trace-id flag, on API versions that know it
_RANDOM: int = getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)
#: the flags a span may get, made once (they cannot change)
_FLAGS = {flags: trace.TraceFlags(flags) for flags in (0, _SAMPLED, _RANDOM, _SAMPLED | _RANDOM)}


class KeelTracerProvider(TracerProvider):
    """The SDK's provider, as keel installs it: it keeps what a ``DirectRecorder`` needs
    (``SpanLimits`` made here, so they are known; the processors added), and offers one
    while the processors allow it."""

    def __init__(self, resource: Resource | None = None, sampler: Sampler | None = None) -> None:
        self.keel_limits = SpanLimits()  # from the OTEL_*_LIMIT variables, as the SDK's
        super().__init__(sampler=sampler, resource=resource, span_limits=self.keel_limits)
        self.keel_processors: tuple[SpanProcessor, ...] = ()
        self.keel_recorder: DirectRecorder | None = self._direct()

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.keel_processors += (span_processor,)
        self.keel_recorder = self._direct()

    def _direct(self) -> DirectRecorder | None:
        if os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
            return None
        if any(type(p) not in _PLAIN_PROCESSORS for p in self.keel_processors):
            return None
        return DirectRecorder(self.resource, self.sampler, self.id_generator, self.keel_limits,
                              self.keel_processors)  # fmt: skip


class DirectRecorder:
    """``recorder.Recorder`` for a ``KeelTracerProvider``: spans made as its tracers
    would make them, handed to ``processors``."""

    def __init__(
        self,
        resource: Resource,
        sampler: Sampler,
        ids: IdGenerator,
        limits: SpanLimits,
        processors: Sequence[SpanProcessor],
    ) -> None:
        self.resource, self.sampler, self.ids, self.limits = resource, sampler, ids, limits
        self.processors = tuple(processors)
        self._attempt_span = span_type(resource, "keel")
        self._run_span = span_type(resource, "keel.runs")
        self._ended = _handing(self.processors)
        #: whether the sampler's answer is known without asking it, for a span under a
        #: remote sampled parent (an attempt's), and for a root (a run's, outside a trace)
        self._parent_decides = _delegates_to_always_on(sampler, "remoteParentSampled")
        self.root_sampled = _delegates_to_always_on(sampler, "root")
        most, longest = limits.max_span_attributes, limits.max_span_attribute_length
        #: how many attributes a span keeps as given (none is cut short: no length limit)
        self._as_given = (most if most is not None else 1 << 30) if longest is None else -1
        #: the SDK's own generator's span ids, drawn here as it draws them
        self._random_ids = type(ids) is RandomIdGenerator

    def attempt(
        self,
        name: str,
        context: otel_context.Context,
        parent: trace.SpanContext,
        attributes: Attributes,
    ) -> trace.Span:
        trace_id, _, remote, flags, trace_state, valid = parent
        if (valid and remote and flags & _SAMPLED and self._parent_decides
                and len(attributes) <= self._as_given):  # fmt: skip
            # every attempt of a sampled run, with the default sampler: the sampler's
            # answer, the flags and trace state the SDK gives, known without asking
            span_id = getrandbits(64) if self._random_ids else self.ids.generate_span_id()
            while not span_id:  # as the SDK's generator: never the invalid id
                span_id = self.ids.generate_span_id()
            # SpanContext(trace_id, span_id, False, flags, trace_state), of ids known valid
            made = _new_tuple(trace.SpanContext, (trace_id, span_id, False,
                              _FLAGS[_SAMPLED | (flags & _RANDOM)], trace_state, True))  # fmt: skip
            return self._attempt_span(name, made, parent, attributes, self.limits, self._ended)
        ids = self.ids
        if not valid:  # a root, as the SDK makes it (keel's attempts have parents)
            return self._span(name, context, None, ids.generate_trace_id(),
                              ids.generate_span_id(), _random(ids), attributes,
                              self._attempt_span)  # fmt: skip
        return self._span(name, context, parent, trace_id, ids.generate_span_id(),
                          flags & _RANDOM, attributes, self._attempt_span)  # fmt: skip

    def run(
        self,
        name: str,
        recorded: RunTrace,
        attributes: Attributes,
        start_ns: int,
        end_ns: int,
        error: str | None,
    ) -> None:
        """The span the SDK's tracer makes with the recorded ids (``exact_ids``)."""
        parent = recorded.parent_context()
        # the recorded ids are not the generator's: random only when the parent's are
        random = 0 if parent is None else parent.trace_flags & _RANDOM
        span = self._span(name, None, parent, recorded.trace_id, recorded.span_id, random,
                          attributes, self._run_span, start_ns)  # fmt: skip
        ended(span, end_ns, error)

    def _span(
        self,
        name: str,
        context: otel_context.Context | None,
        parent: trace.SpanContext | None,
        trace_id: int,
        span_id: int,
        random: int,
        attributes: Attributes,
        kind: type[DirectSpan],
        start: int | None = None,
    ) -> trace.Span:
        """A span as the SDK's tracer starts it: the sampler's decision, flags and trace
        state; recording (a ``kind`` of ``DirectSpan``) unless the sampler drops it.
        ``context``: the one it starts in, for the sampler (None: a run's, made from
        ``parent`` only if the sampler is asked)."""
        trace_state: trace.TraceState | None
        if parent is None and self.root_sampled:
            # what the sampler would answer, known without asking it
            decision, trace_state = _RECORD_AND_SAMPLE, None
        elif (self._parent_decides and parent is not None and parent.is_remote
                and parent.trace_flags & _SAMPLED):  # fmt: skip
            decision, trace_state = _RECORD_AND_SAMPLE, parent.trace_state
        else:
            if context is None:
                context = outside(parent)
            sampled = self.sampler.should_sample(context, trace_id, name, _INTERNAL,
                                                 attributes, ())  # fmt: skip
            decision, trace_state, attributes = (sampled.decision, sampled.trace_state,
                                                 sampled.attributes)  # fmt: skip
        flags = _FLAGS[(_SAMPLED if decision is _RECORD_AND_SAMPLE else 0) | random]
        span_context = trace.SpanContext(trace_id, span_id, False, flags, trace_state)
        if decision is _DROP:
            return trace.NonRecordingSpan(span_context)
        return kind(name, span_context, parent, self._bounded(attributes), self.limits,
                    self._ended, start)  # fmt: skip

    def _bounded(self, attributes: Attributes) -> Any:
        """The span's attributes as the sampler gave them (keel's, unless it added some),
        bounded by the limits unless they are within them already."""
        if len(attributes) <= self._as_given:
            return attributes
        limits = self.limits
        return BoundedAttributes(limits.max_span_attributes, attributes, immutable=False,
                                 max_value_len=limits.max_span_attribute_length)  # fmt: skip


def _handing(processors: tuple[SpanProcessor, ...]) -> Finish:
    """What hands an ended span to every processor: the one processor's ``on_end``
    itself, when there is one."""
    if len(processors) == 1:
        return processors[0].on_end

    def ended(span: DirectSpan) -> None:
        for processor in processors:
            processor.on_end(span)

    return ended


_new_tuple = tuple.__new__
#: ``DirectRecorder.attempt`` takes a span context apart and makes one as a tuple of its
#: fields in this order, then whether it is valid, as the API's ``SpanContext`` is one:
#: checked once here
_MADE = trace.SpanContext(3, 4, True, _FLAGS[_SAMPLED], trace.TraceState([("k", "v")]))
if tuple(_MADE) != (_MADE.trace_id, _MADE.span_id, _MADE.is_remote, _MADE.trace_flags,
                    _MADE.trace_state, _MADE.is_valid):  # fmt: skip
    raise ImportError("opentelemetry-api: a SpanContext keel does not know how to make")


#: the SDK's standard parent-based samplers, as they describe themselves: the root's
#: (always on or off, a ratio), then the remote sampled parent's
_PARENT_BASED = re.compile(r"ParentBased\{root:(?P<root>AlwaysOnSampler|AlwaysOffSampler|"
                           r"TraceIdRatioBased\{[0-9.e+-]+\}),"
                           r"remoteParentSampled:(?P<remoteParentSampled>\w+),")  # fmt: skip


def _delegates_to_always_on(sampler: Sampler, case: str) -> bool:
    """Whether ``sampler`` is one of the SDK's standard parent-based ones
    (``parentbased_always_on``, the default, ``parentbased_traceidratio``...) and hands
    ``case`` (``root``, or ``remoteParentSampled``) to the always-on sampler: then it
    records and samples every such span, with the attributes it is given and the
    parent's trace state, and need not be asked each time. Told by its public
    description; any other sampler is asked for every span."""
    if not isinstance(sampler, ParentBased):
        return False
    if type(sampler).should_sample is not ParentBased.should_sample:
        return False
    found = _PARENT_BASED.match(cast(Any, sampler).get_description())
    return found is not None and found[case] == "AlwaysOnSampler"


def _random(ids: IdGenerator) -> int:
    """The random-trace-id flag of a trace ``ids`` begins, as the SDK sets it."""
    is_random = getattr(ids, "is_trace_id_random", None)
    return _RANDOM if is_random is not None and is_random() else 0

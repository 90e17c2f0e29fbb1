"""A span as ``keel.runtime.tracing.direct`` makes it: a plain object while the attempt
runs, handed itself to the span processors when it ends.

It is a whole ``opentelemetry.trace.Span``: current while the task runs, so what the task
does to the current span (an attribute, an event, a status, an exception recorded) is
kept, as the SDK's span would keep it, within the provider's ``SpanLimits``. The SDK's
span pays for that up front (a lock, bounded attributes, events and links made at
start); this one makes them only when the task asks, and its own attributes, which keel
writes once and within the limits, stay the dictionary they were given.

It is also the SDK's ``ReadableSpan`` (as the SDK's own span is), with the fields that
class reads: the processors are handed the span itself, not a copy made at its end
(the SDK's span copies itself because it has a lock to leave behind; this one, once
ended, takes no more writes). The provider's resource and the instrumentation scope are
the same for every span of a recorder: they are its subclass's (``span_type``).

No lock: the task may change the span while it runs, the worker ends it once the
task's outcome is back; a thread the task leaves running that still writes to it after
that is ignored, as the SDK ignores writes to an ended span (with a warning).
"""

from __future__ import annotations

import logging
import traceback
import warnings
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from time import time_ns

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util import types

log = logging.getLogger("keel.tracing")
#: a span's status until something sets it (a ``Status`` never changes: one for all)
_UNSET = Status(StatusCode.UNSET)

#: what is done with the span once it has ended: it is handed to the processors
Finish = Callable[["DirectSpan"], None]


class DirectSpan(trace.Span, ReadableSpan):
    """A recording span, which is its own ``ReadableSpan`` once it has ended. Made as a
    recorder's subclass (``span_type``), which has the resource and scope."""

    _context: trace.SpanContext  # never None, unlike a ReadableSpan's
    # ReadableSpan's fields that begin the same for every span: set when they change
    _kind = trace.SpanKind.INTERNAL
    _end_time: int | None = None
    _events: Sequence[Event] = ()
    _links: Sequence[trace.Link] = ()
    _status = _UNSET

    def __init__(
        self,
        name: str,
        context: trace.SpanContext,
        parent: trace.SpanContext | None,
        attributes: Mapping[str, types.AnyValue],
        limits: SpanLimits,
        finish: Finish,
        start: int | None = None,
    ) -> None:
        """``start``: now unless given (a run's span, made after the fact)."""
        self._name = name
        self._context = context
        self._parent = parent
        #: as given (within ``limits``: ``DirectRecorder`` saw to it) until a task writes
        self._attributes = attributes
        self._limits = limits
        self._finish = finish
        self._start_time = time_ns() if start is None else start

    # --- opentelemetry.trace.Span -----------------------------------------------------------

    def get_span_context(self) -> trace.SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            log.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._finish(self)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._ended("set_attribute"):
            return
        self._writable()[key] = value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._ended("add_event"):
            return
        limits = self._limits
        bounded = BoundedAttributes(limits.max_event_attributes, attributes, immutable=True,
                                    max_value_len=limits.max_attribute_length)  # fmt: skip
        if not isinstance(self._events, BoundedList):
            self._events = BoundedList(limits.max_events)
        self._events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(self, context: trace.SpanContext, attributes: types.Attributes = None) -> None:
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return  # as the SDK: a link to nothing
        if self._ended("add_link"):
            return
        limits = self._limits
        bounded = BoundedAttributes(limits.max_link_attributes, attributes, immutable=True,
                                    max_value_len=limits.max_attribute_length)  # fmt: skip
        if not isinstance(self._links, BoundedList):
            self._links = BoundedList(limits.max_links)
        self._links.append(trace.Link(context, bounded))

    def update_name(self, name: str) -> None:
        if not self._ended("update_name"):
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK: an ``OK`` status is final, ``UNSET`` changes nothing."""
        if self._ended("set_status") or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The ``exception`` event the SDK's span records."""
        module, qualname = type(exception).__module__, type(exception).__qualname__
        recorded: MutableMapping[str, types.AnyValue] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)

    # ----------------------------------------------------------------------------------------

    def _ended(self, what: str) -> bool:
        if self._end_time is None:
            return False
        log.warning("Tried calling %s on an ended span.", what)
        return True

    def _writable(self) -> BoundedAttributes:
        """The attributes, bounded by the limits from the first write on."""
        if not isinstance(self._attributes, BoundedAttributes):
            limits = self._limits
            self._attributes = BoundedAttributes(
                limits.max_span_attributes, self._attributes, immutable=False,
                max_value_len=limits.max_span_attribute_length,
            )  # fmt: skip
        return self._attributes

    def __repr__(self) -> str:
        return f'DirectSpan(name="{self._name}", context={self._context})'


def span_type(resource: Resource, scope: str) -> type[DirectSpan]:
    """The ``DirectSpan`` of a provider's ``resource`` and an instrumentation scope, as
    ``TracerProvider.get_tracer(scope)`` makes it (and the deprecated
    ``InstrumentationInfo`` the SDK still gives every span)."""
    with warnings.catch_warnings():  # the SDK's spans carry it: so do these
        warnings.simplefilter("ignore", DeprecationWarning)
        info = InstrumentationInfo(scope, "", None)
    fields = {"_resource": resource, "_instrumentation_info": info,
              "_instrumentation_scope": InstrumentationScope(scope, "", None, None)}  # fmt: skip
    return type("DirectSpan", (DirectSpan,), fields)

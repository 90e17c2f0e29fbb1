"""An attempt's span as ``keel.runtime.tracing.direct`` makes it: a plain object while the
attempt runs, a ``ReadableSpan`` handed to the span processors when it ends.

It is a whole ``opentelemetry.trace.Span``: current while the task runs, so what the task
does to the current span (an attribute, an event, a status, an exception recorded) is
kept, as the SDK's span would keep it, within the provider's ``SpanLimits``. The SDK's
span pays for that up front (a lock, bounded attributes, events and links made at
start); this one makes them only when the task asks, and its own attributes, which keel
writes once and within the limits, stay the dictionary they were given.

No lock: the task may change the span while it runs, the worker ends it once the
task's outcome is back; a thread the task leaves running that still writes to it after
that is ignored, as the SDK ignores writes to an ended span (with a warning).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util import types

log = logging.getLogger("keel.tracing")
#: a span's status until something sets it (a ``Status`` never changes: one for all)
_UNSET = Status(StatusCode.UNSET)

#: what is done with the span once it has ended: it is handed to the processors
Finish = Callable[["DirectSpan"], None]


class DirectSpan(trace.Span):
    """A recording span whose content ``readable`` gives once it has ended."""

    __slots__ = ("_attributes", "_context", "_end", "_events", "_finish", "_limits",
                 "_links", "_name", "_parent", "_start", "_status")  # fmt: skip

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
        self._start = time_ns() if start is None else start
        self._end: int | None = None
        self._events: BoundedList[Event] | None = None
        self._links: BoundedList[trace.Link] | None = None
        self._status = _UNSET

    def readable(self, resource: Any, scope: Any, info: Any) -> ReadableSpan:
        """The ended span as the SDK's would be handed to its processors."""
        return ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=resource,
            attributes=self._attributes,
            events=() if self._events is None else self._events,
            links=() if self._links is None else self._links,
            kind=trace.SpanKind.INTERNAL,
            instrumentation_info=info,
            status=self._status,
            start_time=self._start,
            end_time=self._end,
            instrumentation_scope=scope,
        )

    # --- opentelemetry.trace.Span -----------------------------------------------------------

    def get_span_context(self) -> trace.SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            log.warning("Calling end() on an ended span.")
            return
        self._end = end_time if end_time is not None else time_ns()
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
        if self._events is None:
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
        if self._links is None:
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
        if self._end is None:
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
        return f'{type(self).__name__}(name="{self._name}", context={self._context})'

"""How keel's processes write their log lines: as text (the default) or as one JSON
object per line (``--log-format json``, ``KEEL_LOG_FORMAT``, ``log_format`` in keel.toml),
for a log pipeline to parse.

A JSON line has ``time`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger`` and
``message``; a line about an attempt also ``run_id``, ``node``, ``attempt`` (and ``item``
for an item of a map): the lines a task logs through ``ctx.logger`` carry them, and the
worker's own lines about an attempt pass them as ``extra``
(``keel.runtime.execution.task_logs.about``). ``trace_id``
comes from a record's ``trace_id`` or ``otelTraceID`` attribute, else from the
OpenTelemetry span current where the line was logged, when ``opentelemetry`` is
installed and a span is. An exception is one string field, ``exception``. A request
line of ``keel serve`` (``keel.server.access``) also has its ``REQUEST_FIELDS``.

A text line says the attempt it is about after the message, in brackets:
``... INFO keel.task.extract: fetched 3 rows [run 3731db03 extract#1]`` (``fan[2]#1``
for an item of a map), so a task's lines can be told apart in text too.

Only the standard library's ``logging``: keel configures the root logger of its own
commands (``configure``); as a library it adds no handler there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from keel.runtime.execution.task_logs import ATTEMPT_FIELDS

#: the formats a keel command can write its log in
LOG_FORMATS = ("text", "json")
#: the text format's layout
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_TRACE_FIELDS = ("trace_id", "otelTraceID")
#: the fields of a request line (``keel.server.access``), written as JSON fields
REQUEST_FIELDS = ("method", "path", "status", "duration_ms", "token", "client", "delivery")


def _current_trace() -> Callable[[], str | None]:
    """Reads the trace id of the OpenTelemetry span current on this thread (None without
    one); a function that finds none when ``opentelemetry`` is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return lambda: None

    def current() -> str | None:
        context = trace.get_current_span().get_span_context()
        return trace.format_trace_id(context.trace_id) if context.is_valid else None

    return current


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self) -> None:
        super().__init__()
        self._trace = _current_trace()

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }  # fmt: skip
        for name in (*ATTEMPT_FIELDS, *REQUEST_FIELDS):
            if fields.get(name) is not None:
                line[name] = fields[name]
        trace_id = next((fields[name] for name in _TRACE_FIELDS if fields.get(name)), None)
        if trace_id is None:
            trace_id = self._trace()
        if trace_id is not None:
            line["trace_id"] = str(trace_id)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def attempt_label(record: logging.LogRecord) -> str | None:
    """``[run 3731db03 extract#1]``: the attempt a record is about (None: it names no
    run), as the text format says it."""
    fields = record.__dict__
    run_id, node, item, attempt = (fields.get(name) for name in ATTEMPT_FIELDS)
    if not isinstance(run_id, str):
        return None
    said = f"run {run_id[:8]}"
    if isinstance(node, str):
        said += f" {node}" if item is None else f" {node}[{item}]"
        if attempt is not None:
            said += f"#{attempt}"
    return f"[{said}]"


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, with the attempt a record is about after its message (before an
    exception's traceback)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        text = super().formatMessage(record)
        label = attempt_label(record)
        return text if label is None else f"{text} {label}"


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``log_format`` (one of ``LOG_FORMATS``)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(log_format: str) -> None:
    """Log ``INFO`` and above to stderr in ``log_format``, for a keel command that runs
    for long (``keel worker``, ``keel serve``). Does nothing when the root logger has a
    handler already (the process configured logging itself). With JSON, warnings are
    logged too, so that every line on stderr is JSON."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    if log_format == "json":
        logging.captureWarnings(True)

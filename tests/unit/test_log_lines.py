"""``--log-format json``: one JSON object per record with the attempt's fields and the
trace id when there is one; and where the setting comes from (flag, environment,
keel.toml), refused with a one-line error when it is neither text nor json."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from opentelemetry import trace

from keel.runtime.execution.context import bound_logger
from keel.runtime.execution.task_logs import about
from keel.runtime.log_lines import JsonFormatter, formatter
from keel.runtime.worker.config import WorkerConfigError, load_worker_config
from keel.store.records import Lease


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("keel.worker", logging.INFO, __file__, 1, message, args or ("you",),
                             None)  # fmt: skip
    made.__dict__.update(extra)
    made.created = 1_700_000_000.25
    return made


def test_a_line_is_one_json_object_with_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(record())

    assert "\n" not in line
    assert json.loads(line) == {"time": "2023-11-14T22:13:20.250Z", "level": "INFO",
                                "logger": "keel.worker", "message": "hello you"}  # fmt: skip


def test_a_line_about_an_attempt_carries_its_run_node_and_attempt() -> None:
    lease = Lease("run-1", "fan", 3, 2, "w1", 0.0)
    worker_line = json.loads(JsonFormatter().format(record(**about(lease))))
    assert (worker_line["run_id"], worker_line["node"], worker_line["item"],
            worker_line["attempt"]) == ("run-1", "fan", 3, 2)  # fmt: skip

    captured: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = captured.append  # type: ignore[method-assign]
    logger = logging.getLogger("keel.task.extract")
    logger.addHandler(handler)
    try:
        bound_logger("run-2", "extract", 1).warning("from the task")
    finally:
        logger.removeHandler(handler)
    task_line = json.loads(JsonFormatter().format(captured[0]))
    assert task_line == {"time": task_line["time"], "level": "WARNING",
                         "logger": "keel.task.extract", "message": "from the task",
                         "run_id": "run-2", "node": "extract", "attempt": 1}  # fmt: skip


def test_an_exception_is_one_string_field() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        failed = logging.LogRecord("keel.worker", logging.ERROR, __file__, 1, "failed", (),
                                   sys.exc_info())  # fmt: skip

    line = JsonFormatter().format(failed)

    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed"
    assert parsed["exception"].startswith("Traceback (most recent call last):")
    assert parsed["exception"].endswith("ValueError: bad\nvalue")


def test_the_trace_id_comes_from_the_record_or_the_current_span() -> None:
    assert "trace_id" not in json.loads(JsonFormatter().format(record()))
    assert json.loads(JsonFormatter().format(record(otelTraceID="ab" * 16)))["trace_id"] == (
        "ab" * 16
    )
    assert json.loads(JsonFormatter().format(record(trace_id="cd" * 16)))["trace_id"] == "cd" * 16

    context = trace.SpanContext(trace_id=0x0AF7651916CD43DD8448EB211C80319C,
                                span_id=0x00F067AA0BA902B7, is_remote=False,
                                trace_flags=trace.TraceFlags(1))  # fmt: skip
    with trace.use_span(trace.NonRecordingSpan(context)):
        line = json.loads(JsonFormatter().format(record()))
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def test_text_stays_the_default_layout() -> None:
    text = formatter("text").format(record())
    assert text.endswith(" INFO keel.worker: hello you")
    with pytest.raises(ValueError, match="not one of text, json"):
        formatter("xml")


def test_the_log_format_comes_from_the_flag_the_environment_or_keel_toml(
    tmp_path: Path,
) -> None:
    (tmp_path / "keel.toml").write_text('log_format = "json"\n')
    assert load_worker_config(cwd=tmp_path, environ={}).log_format == "json"
    assert load_worker_config(cwd=tmp_path, environ={"KEEL_LOG_FORMAT": "TEXT"}).log_format == (
        "text"
    )
    flagged = load_worker_config(cwd=tmp_path, environ={}, log_format="text")
    assert (flagged.log_format, flagged.sources["log_format"]) == ("text", "flag")


def test_the_log_format_is_text_by_default(tmp_path: Path) -> None:
    config = load_worker_config(cwd=tmp_path, environ={})
    assert (config.log_format, config.sources["log_format"]) == ("text", "default")


@pytest.mark.parametrize(
    ("given", "where"),
    [
        ({"environ": {"KEEL_LOG_FORMAT": "xml"}}, "environment (KEEL_LOG_FORMAT)"),
        ({"log_format": "yaml"}, "flag (--log-format)"),
    ],
)
def test_a_log_format_that_is_neither_text_nor_json_is_refused(
    tmp_path: Path, given: dict[str, object], where: str
) -> None:
    options: dict[str, object] = {"cwd": tmp_path, "environ": {}, **given}
    with pytest.raises(WorkerConfigError) as refused:
        load_worker_config(**options)  # type: ignore[arg-type]
    assert str(refused.value).startswith(f"{where}: log_format must be text or json")


def test_log_format_in_keel_toml_must_be_a_word(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text("log_format = 1\n")
    with pytest.raises(WorkerConfigError, match="log_format must be text or json, got 1"):
        load_worker_config(cwd=tmp_path, environ={})


RUN = "3731db03" + "0" * 24


def test_a_text_line_about_an_attempt_says_which_after_the_message() -> None:
    text = formatter("text")

    node = text.format(record(run_id=RUN, node="chatty", item=None, attempt=1))
    item = text.format(record(**about(Lease(RUN, "fan", 3, 2, "w1", 0.0))))

    assert node.endswith(" INFO keel.worker: hello you [run 3731db03 chatty#1]")
    assert item.endswith(" INFO keel.worker: hello you [run 3731db03 fan[3]#2]")


def test_a_tasks_text_line_says_its_attempt_before_a_traceback() -> None:
    captured: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = captured.append  # type: ignore[method-assign]
    logger = logging.getLogger("keel.task.long_kq")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("bad")
        except ValueError:
            bound_logger(RUN, "long_kq", 3).exception("long_kq started")
    finally:
        logger.removeHandler(handler)

    first, *rest = formatter("text").format(captured[0]).splitlines()

    assert first.endswith(" ERROR keel.task.long_kq: long_kq started [run 3731db03 long_kq#3]")
    assert rest[0] == "Traceback (most recent call last):"

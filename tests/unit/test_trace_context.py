"""A run's trace context (``keel.runtime.tracing.context``): recorded in ``RunStarted``
without changing old histories, derived the same way in every process for runs that
recorded none, carried to child runs; shown by ``keel show``; and the environment that
asks ``keel worker`` for traces it cannot send is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli.app import app
from keel.engine.events import RunStarted, from_data, to_data
from keel.runtime.operations.control import start_run
from keel.runtime.tracing.context import (
    RunTrace,
    child_run_trace,
    new_run_trace,
    of_run,
    parsed,
    traceparent_of,
)
from keel.runtime.tracing.sdk import TracingSetupError, configure
from keel.spec import parse_spec
from keel.store.sqlite import SQLiteStore

SPEC = {"name": "plain", "nodes": [{"id": "a", "task": "m:f"}]}
CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_an_event_without_a_trace_is_written_as_before() -> None:
    old = RunStarted(workflow="w", spec_version="v", input={})
    assert "trace" not in to_data(old)  # the stored text, and so its hash, is unchanged
    traced = RunStarted(workflow="w", spec_version="v", input={},
                        trace=new_run_trace("r1").to_data())  # fmt: skip
    assert from_data(to_data(traced)) == traced


def test_a_run_that_recorded_no_trace_gets_the_same_ids_everywhere() -> None:
    derived = of_run(None, "run-1")
    assert derived == of_run(None, "run-1") == new_run_trace("run-1")
    assert derived != of_run(None, "run-2")
    assert derived.trace_id
    assert derived.span_id
    assert derived.parent_id is None
    assert RunTrace.from_data(derived.to_data()) == derived


def test_a_caller_puts_the_run_in_its_trace_and_a_child_run_in_its_parents() -> None:
    caller = parsed(CALLER)
    assert caller is not None
    run = new_run_trace("run-1", caller)
    assert (run.trace_id, run.parent_id) == (caller.trace_id, caller.span_id)
    assert run.span_id == of_run(None, "run-1").span_id
    assert traceparent_of(caller) == CALLER
    child = child_run_trace(run, "child-1")
    assert (child.trace_id, child.parent_id) == (run.trace_id, run.span_id)
    assert child.span_id not in (run.span_id, caller.span_id)


NO_SPAN = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
NO_TRACE = "00-" + "0" * 32 + "-00f067aa0ba902b7-01"


@pytest.mark.parametrize("header", [None, "", "junk", NO_TRACE, NO_SPAN])
def test_a_malformed_traceparent_names_no_span(header: str | None) -> None:
    assert parsed(header) is None


def test_keel_show_gives_the_trace_id(tmp_path: Path) -> None:
    db = tmp_path / "keel.db"
    store = SQLiteStore(db)
    run_id = start_run(store, parse_spec(SPEC), {}).id
    store.close()
    runner = CliRunner()
    shown = runner.invoke(app, ["show", run_id, "--db", f"sqlite:///{db}"])
    assert shown.exit_code == 0, shown.output
    trace_id = f"{of_run(None, run_id).trace_id:032x}"
    assert ["trace", trace_id] in [line.split() for line in shown.output.splitlines()]
    document = json.loads(runner.invoke(app, ["show", run_id, "--db", f"sqlite:///{db}",
                                              "--json"]).output)  # fmt: skip
    assert document["trace"]["trace_id"] == trace_id


def test_the_environment_decides_whether_traces_are_exported() -> None:
    assert configure("keel-worker", {}) is None
    assert configure("keel-worker", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318",
                                     "OTEL_SDK_DISABLED": "true"}) is None  # fmt: skip
    assert configure("keel-worker", {"OTEL_TRACES_EXPORTER": "none"}) is None


@pytest.mark.parametrize(("env", "said"), [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin: keel exports to otlp"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "OTLP protocol grpc: keel sends OTLP over HTTP"),
])  # fmt: skip
def test_traces_keel_cannot_send_are_refused_in_one_line(env: dict[str, str], said: str) -> None:
    with pytest.raises(TracingSetupError, match=said):
        configure("keel-worker", env)
    result = CliRunner().invoke(app, ["worker", "--allow", "json:dumps"], env=env)
    assert result.exit_code == 1
    assert f"keel worker: {said}" in result.output
    assert "Traceback" not in result.output

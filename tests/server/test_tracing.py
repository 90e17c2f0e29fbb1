"""Traces: a ``traceparent`` the API receives (``POST /runs``, ``POST /events/NAME``, a
webhook) is recorded with the run, and the worker that executes it makes a span per
attempt in that trace, the run's span their parent; the run's span is emitted when the
run ends, with the id recorded when it started. Spans are caught by the SDK's
in-memory exporter; the app runs for real under Starlette's TestClient and a real
``Worker`` executes the run (``tests/e2e/test_tracing_worker.py`` does the same with a
``keel worker`` process exporting over OTLP/HTTP). Each test that records spans does so
both ways keel makes them: through the tracer of a provider its user configured (the
SDK's ``TracerProvider``), and directly, for the provider keel installs itself
(``KeelTracerProvider``); ``tests/unit/test_trace_recorders.py`` compares the two span by
span."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import StatusCode

import keel
from keel.runtime.tracing import recorder
from keel.runtime.tracing.context import continued
from keel.runtime.tracing.direct import DirectRecorder, KeelTracerProvider
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.store.records import RunRecord
from tests.server.conftest import Api
from tests.server.hookflows import SECRET, SECRET_ENV, deploy_hooked, signed
from tests.server.traceflows import NODES, deploy_traced, inner, outer, traced


def installed(monkeypatch: pytest.MonkeyPatch, provider: TracerProvider) -> InMemorySpanExporter:
    """``provider`` as this process's for this test only, its spans kept in memory.

    OpenTelemetry lets a process set its provider once; this sets the global that
    ``trace.get_tracer_provider()`` reads (as OpenTelemetry's own test helpers do), and
    ``monkeypatch`` puts it back afterwards, so the tests after it run without tracing,
    as they expect.
    """
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    # the spans are made the way the test says: through the tracer, or directly
    made = recorder.of(provider)
    assert isinstance(made, DirectRecorder) is isinstance(provider, KeelTracerProvider)
    return exporter


#: a provider as a program embedding keel configures it (keel uses its tracer), and as
#: keel installs it (keel makes its spans directly)
PROVIDERS = {"theirs": TracerProvider, "keels": KeelTracerProvider}


@pytest.fixture(params=sorted(PROVIDERS))
def provider_type(request: pytest.FixtureRequest) -> type[TracerProvider]:
    return PROVIDERS[request.param]


@pytest.fixture
def spans(
    monkeypatch: pytest.MonkeyPatch, provider_type: type[TracerProvider]
) -> Iterator[InMemorySpanExporter]:
    provider = provider_type()
    yield installed(monkeypatch, provider)
    provider.shutdown()


def new_traceparent() -> tuple[str, int, int]:
    """A caller's ``traceparent``, with its trace id and span id."""
    trace_id, span_id = secrets.randbits(128) or 1, secrets.randbits(64) or 1
    return f"00-{trace_id:032x}-{span_id:016x}-01", trace_id, span_id


def recorded_trace(api: Api, run_id: str) -> dict[str, Any]:
    response = api.client.get(f"/runs/{run_id}", headers=api.auth("viewer"))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["trace"]
    return found


def executed(api: Api, run_id: str) -> list[RunRecord]:
    """Run ``run_id`` (and its child runs) to its end on a worker of this process."""
    worker = Worker(api.store, WorkerOptions(concurrency=2))
    try:
        return worker.run_until_finished([run_id])
    finally:
        worker.close()


def test_a_run_started_with_a_traceparent_is_traced_by_the_worker_that_runs_it(
    api: Api, spans: InMemorySpanExporter
) -> None:
    deploy_traced(api.store)
    header, trace_id, caller_span = new_traceparent()
    response = api.client.post(
        "/runs", json={"workflow": "traced", "input": {"n": 1}},
        headers={**api.auth("operator"), "traceparent": header},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    recorded = recorded_trace(api, run_id)
    assert recorded["trace_id"] == f"{trace_id:032x}"
    run_span_id = int(recorded["span_id"], 16)
    assert run_span_id != caller_span

    (done,) = executed(api, run_id)
    assert done.status == "succeeded", done.reason

    ours = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    (run_span,) = [s for s in ours if s.name == "run traced"]
    assert run_span.context.span_id == run_span_id  # the id recorded when the run started
    # under the caller's span: through the spans FastAPI makes for the request, when it
    # makes them (it does once a provider is configured), else right under it
    assert run_span.parent is not None
    assert run_span.parent.span_id == int(recorded["parent_id"], 16)
    assert caller_span in ancestors(run_span, ours)
    assert run_span.attributes is not None
    assert run_span.attributes["keel.run_id"] == run_id
    assert run_span.attributes["keel.status"] == "succeeded"
    assert run_span.start_time is not None
    assert run_span.end_time is not None
    assert run_span.start_time < run_span.end_time

    tried = [s for s in ours if s.instrumentation_scope.name == "keel"]
    nodes = [(s.attributes or {})["keel.node"] for s in tried]
    assert sorted(nodes) == sorted([*NODES, "flaky"])  # the retried node: two attempts
    for span in tried:
        assert span.parent is not None
        assert span.parent.span_id == run_span_id
        attributes = span.attributes or {}
        assert attributes["keel.run_id"] == run_id
        assert attributes["keel.workflow"] == "traced"
        assert span.name == f"traced.{attributes['keel.node']}"
        assert attributes["keel.queue"] == ("tracing" if attributes["keel.node"] == "flaky"
                                            else "default")  # fmt: skip
    flaky = sorted((s for s in tried if (s.attributes or {})["keel.node"] == "flaky"),
                   key=lambda s: (s.attributes or {})["keel.attempt"])  # fmt: skip
    assert [(s.attributes or {})["keel.attempt"] for s in flaky] == [1, 2]
    assert flaky[0].status.status_code is StatusCode.ERROR
    assert flaky[0].status.description == "ConnectionError"
    assert (flaky[0].attributes or {})["error.type"] == "ConnectionError"
    assert flaky[1].status.status_code is StatusCode.UNSET

    # inside each task, the current span was the attempt's (in the child process too)
    history = api.client.get(f"/runs/{run_id}", headers=api.auth("viewer")).json()
    outputs = {node["id"]: node["output"] for node in history["nodes"]}
    last = {(s.attributes or {})["keel.node"]: s for s in tried}
    last["flaky"] = flaky[1]
    for node in NODES:
        expected = f"00-{trace_id:032x}-{last[node].context.span_id:016x}-01"
        assert outputs[node] == {"current": expected, "ctx": expected}, node


def ancestors(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[int]:
    """The ids of the span's parent, its parent's, and so on, up to the first one not
    among ``spans`` (a remote caller's)."""
    by_id = {s.context.span_id: s for s in spans}
    found = []
    parent = span.parent
    while parent is not None:
        found.append(parent.span_id)
        above = by_id.get(parent.span_id)
        parent = None if above is None else above.parent
    return found


def _spans_of(found: Sequence[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in found if s.context.trace_id == trace_id]


def test_a_run_started_outside_any_trace_is_the_root_of_its_own(
    api: Api, spans: InMemorySpanExporter
) -> None:
    run_id = keel.Client(store=api.store).start(traced, {"n": 2})
    recorded = recorded_trace(api, run_id)
    assert recorded["parent_id"] is None
    assert recorded["traceparent"] == f"00-{recorded['trace_id']}-{recorded['span_id']}-01"
    executed(api, run_id)
    ours = _spans_of(spans.get_finished_spans(), int(recorded["trace_id"], 16))
    (run_span,) = [s for s in ours if s.name == "run traced"]
    assert run_span.parent is None
    assert run_span.context.span_id == int(recorded["span_id"], 16)
    tried = [s for s in ours if s.instrumentation_scope.name == "keel"]
    assert len(tried) == len(NODES) + 1
    assert {s.parent.span_id for s in tried if s.parent is not None} == {run_span.context.span_id}


def test_a_child_run_is_in_its_parents_trace_under_its_run_span(
    api: Api, spans: InMemorySpanExporter
) -> None:
    run_id = keel.Client(store=api.store).start(outer, {"n": 6})
    (done,) = executed(api, run_id)
    assert done.status == "succeeded", done.reason
    (child,) = api.store.list_runs(parent=run_id)
    parent_trace, child_trace = recorded_trace(api, run_id), recorded_trace(api, child.id)
    assert child_trace["trace_id"] == parent_trace["trace_id"]
    assert child_trace["parent_id"] == parent_trace["span_id"]
    ours = _spans_of(spans.get_finished_spans(), int(parent_trace["trace_id"], 16))
    by_name = {s.name: s for s in ours}
    assert set(by_name) == {"run outer", "run inner", "inner.first"}
    assert by_name["run inner"].parent is not None
    assert by_name["run inner"].parent.span_id == by_name["run outer"].context.span_id
    assert by_name["inner.first"].parent is not None
    assert by_name["inner.first"].parent.span_id == by_name["run inner"].context.span_id


def test_a_run_span_starts_when_its_run_was_recorded_however_the_worker_knows_the_run(
    api: Api, spans: InMemorySpanExporter
) -> None:
    # ``outer`` started by the worker itself (its state made as it starts), ``inner``
    # created by the worker's commit and read back from its history, and one started
    # by another client and read back: each span from its record's ``created_at``
    worker = Worker(api.store, WorkerOptions(concurrency=2))
    try:
        started_here = worker.start_run(outer.spec, {"n": 8}, registry=outer.registry)
        elsewhere = keel.Client(store=api.store).start(inner, {"n": 9})
        worker.run_until_finished([started_here, elsewhere])
    finally:
        worker.close()
    (child,) = api.store.list_runs(parent=started_here)
    for run_id in (started_here, child.id, elsewhere):
        record = api.store.get_run(run_id)
        assert record.status == "succeeded", record.reason
        trace_id = int(recorded_trace(api, run_id)["trace_id"], 16)
        (run_span,) = [s for s in _spans_of(spans.get_finished_spans(), trace_id)
                       if s.name.startswith("run ") and s.attributes
                       and s.attributes["keel.run_id"] == run_id]  # fmt: skip
        assert run_span.start_time == int(record.created_at * 1e9), run_id
        assert run_span.end_time is not None
        assert run_span.end_time >= run_span.start_time


def test_a_run_the_sampler_drops_is_dropped_by_every_process(
    api: Api, monkeypatch: pytest.MonkeyPatch, provider_type: type[TracerProvider]
) -> None:
    # the process that starts the run asks its sampler (none of a ratio of 0 is kept)
    # and records the answer in the run's flags; workers follow the flags
    provider = provider_type(sampler=ParentBased(TraceIdRatioBased(0.0)))
    spans = installed(monkeypatch, provider)
    run_id = keel.Client(store=api.store).start(outer, {"n": 7})
    (done,) = executed(api, run_id)
    provider.shutdown()
    assert done.status == "succeeded", done.reason
    (child,) = api.store.list_runs(parent=run_id)
    for run in (run_id, child.id):
        recorded = recorded_trace(api, run)
        assert recorded["traceparent"].endswith("-00"), run  # not sampled
        assert not _spans_of(spans.get_finished_spans(), int(recorded["trace_id"], 16))


def test_a_worker_follows_the_decision_recorded_whatever_its_own_sampler(
    api: Api, monkeypatch: pytest.MonkeyPatch, provider_type: type[TracerProvider]
) -> None:
    # started inside a caller's trace that is not sampled: the run records it so; a
    # worker whose sampler would record anything it is asked about records nothing
    header, trace_id, _ = new_traceparent()
    client = keel.Client(store=api.store)
    with continued(header[:-2] + "00"):
        run_id = client.start(outer, {"n": 10})
    assert recorded_trace(api, run_id)["traceparent"].endswith("-00")
    provider = provider_type(sampler=ALWAYS_ON)
    spans = installed(monkeypatch, provider)
    (done,) = executed(api, run_id)
    provider.shutdown()
    assert done.status == "succeeded", done.reason
    assert not _spans_of(spans.get_finished_spans(), trace_id)
    # the tasks ran in the run's trace all the same, under its (unrecorded) run span
    (child,) = api.store.list_runs(parent=run_id)
    output = api.store.get_run(child.id).output
    expected = recorded_trace(api, child.id)["traceparent"]
    assert output == {"result": {"current": expected, "ctx": expected}}


def test_a_client_on_the_store_records_the_callers_span(api: Api) -> None:
    _, trace_id, caller_span = new_traceparent()
    caller = trace.NonRecordingSpan(trace.SpanContext(trace_id, caller_span, is_remote=False,
                                                      trace_flags=trace.TraceFlags(1)))  # fmt: skip
    client = keel.Client(store=api.store)
    with trace.use_span(caller):
        run_id = client.start(traced, {"n": 4})
    outside = client.start(traced, {"n": 5})
    recorded = recorded_trace(api, run_id)
    assert recorded["trace_id"] == f"{trace_id:032x}"
    assert recorded["parent_id"] == f"{caller_span:016x}"
    assert recorded_trace(api, outside)["trace_id"] != f"{trace_id:032x}"


def test_an_event_and_a_webhook_record_the_traceparent_they_came_with(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    deploy_hooked(api.store)
    header, trace_id, caller_span = new_traceparent()
    sent = api.client.post("/events/order", json={"data": {"amount": 5}},
                           headers={**api.auth("operator"), "traceparent": header})  # fmt: skip
    assert sent.status_code == 201, sent.text
    (started,) = sent.json()["runs"]
    content, headers = signed({"amount": 7})
    hooked = api.client.post("/hooks/orders", content=content,
                             headers={**headers, "traceparent": header})  # fmt: skip
    assert hooked.status_code == 201, hooked.text
    (delivered,) = hooked.json()["runs"]
    for run in (started, delivered):
        recorded = recorded_trace(api, run["id"])
        assert recorded["trace_id"] == f"{trace_id:032x}"
        assert recorded["parent_id"] == f"{caller_span:016x}"


@pytest.mark.parametrize("header", ["", "00-zz-yy-01", "00-" + "0" * 32 + "-" + "1" * 16 + "-01",
                                    "junk"])  # fmt: skip
def test_a_malformed_traceparent_is_ignored(api: Api, header: str) -> None:
    deploy_traced(api.store)
    response = api.client.post("/runs", json={"workflow": "traced", "input": {"n": 3}},
                               headers={**api.auth("operator"), "traceparent": header})  # fmt: skip
    assert response.status_code == 201, response.text
    recorded = recorded_trace(api, response.json()["id"])
    assert recorded["parent_id"] is None
    assert recorded["trace_id"] != "0" * 32

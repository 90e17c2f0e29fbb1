"""keel's spans made both ways (``keel.runtime.tracing.recorder``): through the SDK's tracer
(a provider a program embedding keel configured) and directly (``direct``: the provider
keel installs itself). Each case makes an attempt's span and a run's span with each
provider and compares what their processors were handed: everything but the attempt
span's id and times (random and the clock's) must be the same, the run span's entirely.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from keel.engine.events import ErrorInfo
from keel.runtime.tracing import attempts, recorder
from keel.runtime.tracing.context import RunTrace, new_run_trace, run_span
from keel.runtime.tracing.direct import DirectRecorder, KeelTracerProvider

RESOURCE = Resource({"service.name": "keel-worker", "host.name": "here"})
#: a run started inside a caller's trace, and one that began its own
CALLED = RunTrace(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x1234, 0x01, 0x00F067AA0BA902B7)
OWN = new_run_trace("run-own")
#: a caller whose trace id is random (W3C level 2: the flag 0x02)
RANDOM = RunTrace(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x1234, 0x03, 0x00F067AA0BA902B7)
#: the times of the events the task adds
GIVEN = (1_000, 2_000)
FAILED = ErrorInfo(type="ConnectionError", message="refused", traceback="Traceback: ...")


@dataclass
class Outcome:
    error: ErrorInfo | None


def made(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider, run: RunTrace
) -> list[ReadableSpan]:
    """The spans ``provider``'s processors are handed for an attempt (failed, written to by
    its task) and its run (failed)."""
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with monkeypatch.context() as patched:
        patched.setattr(trace, "_TRACER_PROVIDER", provider)
        span = attempts.start_attempt("run-1", "claims", "check", 2, 7, "default", run.to_data())
        # what a task may do to the current span
        span.set_attribute("app.claim", "c-1")
        span.set_attributes({"app.amount": 12.5, "app.tags": ["a", "b"]})
        span.add_event("looked up", {"app.rows": 3}, timestamp=GIVEN[0])
        try:
            raise ValueError("bad claim")
        except ValueError as exc:
            span.record_exception(exc, timestamp=GIVEN[1])
        attempts.ending(span, lambda key, outcome: None)("key", Outcome(FAILED))
        recorder.of(provider).run("run claims", run, {"keel.run_id": "run-1",
                                  "keel.workflow": "claims", "keel.status": "failed"},
                                  1_000_000, 5_000_000, "a node failed")  # fmt: skip
    provider.shutdown()
    return list(exporter.get_finished_spans())


def content(span: ReadableSpan, *, exact: bool) -> dict[str, Any]:
    """All a span says (the attempt's id and times left out unless ``exact``)."""
    said: dict[str, Any] = json.loads(span.to_json())
    with warnings.catch_warnings():  # the deprecated field the SDK still fills
        warnings.simplefilter("ignore", DeprecationWarning)
        info = span.instrumentation_info
    said.update(flags=int(span.context.trace_flags), remote=span.context.is_remote,
                parent=span.parent, scope=span.instrumentation_scope, info=repr(info),
                dropped=(span.dropped_attributes, span.dropped_events, span.dropped_links),
                event_times=[event.timestamp for event in span.events])  # fmt: skip
    if not exact:
        del said["context"]["span_id"], said["start_time"], said["end_time"]
        for at, event in enumerate(said["events"]):
            if said["event_times"][at] not in GIVEN:  # the error's: the clock's
                said["event_times"][at] = "now"
                del event["timestamp"]
    return said


@pytest.fixture(params=["no limits", "limits"])
def limits(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's span limits, read by both providers from the environment."""
    if request.param == "limits":
        monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
        monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "6")
        monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "5")
        monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "2")


SAMPLERS: dict[str, Sampler | None] = {
    "default": None,  # parent-based, always on: the one a worker has unless told
    "parent-based ratio": ParentBased(TraceIdRatioBased(0.5)),
    "ratio": TraceIdRatioBased(1.0),  # not parent-based: asked for every span
    "always on": ALWAYS_ON,
}


@pytest.mark.parametrize("run", [CALLED, OWN, RANDOM], ids=["called", "own", "random"])
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.usefixtures("limits")
def test_a_span_made_directly_is_the_one_the_sdk_makes(
    monkeypatch: pytest.MonkeyPatch, run: RunTrace, sampler: str
) -> None:
    theirs = made(monkeypatch, TracerProvider(resource=RESOURCE, sampler=SAMPLERS[sampler]), run)
    keels = made(monkeypatch, KeelTracerProvider(RESOURCE, SAMPLERS[sampler]), run)
    assert [s.name for s in theirs] == [s.name for s in keels] == ["claims.check", "run claims"]
    (attempt, run_span), (direct_attempt, direct_run) = theirs, keels
    assert content(direct_attempt, exact=False) == content(attempt, exact=False)
    assert content(direct_run, exact=True) == content(run_span, exact=True)
    # what is compared is what was meant: the attempt under the run span, failed
    assert direct_attempt.parent == run.span_context()
    assert direct_attempt.context.trace_id == run.trace_id
    assert direct_attempt.context.span_id not in (run.span_id, attempt.context.span_id)
    assert direct_attempt.start_time is not None
    assert direct_attempt.end_time is not None
    assert direct_attempt.start_time <= direct_attempt.end_time
    assert direct_attempt.status.status_code is trace.StatusCode.ERROR
    assert direct_run.context.span_id == run.span_id
    assert direct_run.parent == run.parent_context()
    assert (direct_run.start_time, direct_run.end_time) == (1_000_000, 5_000_000)


def test_what_a_task_writes_to_its_attempt_span_is_kept_as_the_sdk_keeps_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (attempt, _) = made(monkeypatch, KeelTracerProvider(RESOURCE), CALLED)
    attributes = attempt.attributes or {}
    assert attributes["app.claim"] == "c-1"
    assert attributes["app.tags"] == ("a", "b")  # cleaned as the SDK cleans it
    assert attributes["keel.item"] == 7
    assert [event.name for event in attempt.events] == ["looked up", "exception", "exception"]
    assert (attempt.events[1].attributes or {})["exception.type"] == "ValueError"
    assert attempt.status.description == attributes["error.type"] == "ConnectionError"
    assert attempt.instrumentation_scope is not None
    assert attempt.instrumentation_scope.name == "keel"
    assert attempt.resource.attributes["host.name"] == "here"


def test_a_sampler_that_drops_spans_drops_them_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    for provider in (TracerProvider(sampler=ALWAYS_OFF), KeelTracerProvider(sampler=ALWAYS_OFF)):
        assert made(monkeypatch, provider, CALLED) == []


def test_an_ended_span_takes_no_more_writes(caplog: pytest.LogCaptureFixture) -> None:
    provider = KeelTracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    direct = provider.keel_recorder
    assert direct is not None
    run = run_span(CALLED.to_data(), "run-1")
    span = direct.attempt("w.n", run.context, run.span_context, {"keel.node": "n"})
    assert span.is_recording()
    span.end()
    assert not span.is_recording()
    span.set_attribute("late", 1)
    span.end()
    (ended,) = exporter.get_finished_spans()  # once
    assert "late" not in (ended.attributes or {})
    assert "ended span" in caplog.text


class Counting(SpanProcessor):
    """A processor of the user's own: its ``on_start`` may matter."""


def test_a_provider_given_other_processors_or_disabled_makes_spans_through_its_tracer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = KeelTracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert isinstance(recorder.of(provider), DirectRecorder)
    provider.add_span_processor(Counting())
    assert provider.keel_recorder is None
    assert isinstance(recorder.of(provider), recorder.ApiRecorder)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert KeelTracerProvider().keel_recorder is None
    # no provider at all: the API's no-op, through the same recorder
    assert isinstance(recorder.of(trace.ProxyTracerProvider()), recorder.ApiRecorder)


def test_a_worker_with_no_provider_never_imports_the_sdk() -> None:
    # importing the SDK costs a process more than a short run: only what traces does it
    script = ("import sys\nfrom bench.workloads import w1_chain\nw1_chain(5, 'normal')\n"
              "print([m for m in sys.modules if m.startswith('opentelemetry.sdk')])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2],
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_a_span_with_no_parent_is_a_root_both_ways() -> None:
    # keel's attempts always have their run span as parent; a root is made as the SDK does
    found = []
    for provider in (TracerProvider(resource=RESOURCE), KeelTracerProvider(RESOURCE)):
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        context = otel_context.Context()
        recorder.of(provider).attempt("w.n", context, trace.INVALID_SPAN_CONTEXT,
                                      {"keel.node": "n"}).end()  # fmt: skip
        (span,) = exporter.get_finished_spans()
        found.append(span)
    theirs, keels = found
    assert keels.parent is None
    assert keels.context.trace_id not in (0, theirs.context.trace_id)  # a new trace
    ours, sdk = content(keels, exact=False), content(theirs, exact=False)
    del ours["context"]["trace_id"], sdk["context"]["trace_id"]
    assert ours == sdk


@pytest.mark.parametrize("run", [CALLED, OWN], ids=["called", "own"])
@pytest.mark.parametrize(
    "sampler",
    [ParentBased(ALWAYS_ON, remote_parent_sampled=ALWAYS_OFF),
     ParentBased(ALWAYS_OFF), ParentBased(ParentBased(ALWAYS_ON))],
    ids=["drops-remote-children", "drops-roots", "nested"],
)  # fmt: skip
def test_a_sampler_whose_answer_is_not_known_is_asked(
    monkeypatch: pytest.MonkeyPatch, run: RunTrace, sampler: Sampler
) -> None:
    theirs = made(monkeypatch, TracerProvider(resource=RESOURCE, sampler=sampler), run)
    keels = made(monkeypatch, KeelTracerProvider(RESOURCE, sampler), run)
    assert [s.name for s in keels] == [s.name for s in theirs]
    for direct, sdk in zip(keels, theirs, strict=True):
        exact = direct.name.startswith("run ")
        assert content(direct, exact=exact) == content(sdk, exact=exact)

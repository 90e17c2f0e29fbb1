"""``keel.Client`` over HTTP sends the caller's current span as a ``traceparent``: the run
it starts on a real server (uvicorn, TCP) joins the caller's trace, as on a store."""

from __future__ import annotations

import secrets

from opentelemetry import trace

from keel import Client
from tests.remote.conftest import Served


def test_a_run_started_over_http_joins_the_callers_trace(served: Served) -> None:
    trace_id, span_id = secrets.randbits(128) or 1, secrets.randbits(64) or 1
    caller = trace.NonRecordingSpan(trace.SpanContext(trace_id, span_id, is_remote=False,
                                                      trace_flags=trace.TraceFlags(1)))  # fmt: skip
    with Client(served.url, token=served.tokens["operator"]) as client:
        with trace.use_span(caller):
            run_id = client.start("review", {"amount": 3})
        outside = client.start("review", {"amount": 4})
        recorded = client.detail(run_id)["trace"]
        apart = client.detail(outside)["trace"]
    assert recorded["trace_id"] == f"{trace_id:032x}"
    assert recorded["parent_id"] == f"{span_id:016x}"
    assert apart["trace_id"] != f"{trace_id:032x}"
    assert apart["parent_id"] is None

"""Traces across processes: a run started over HTTP with a ``traceparent`` and executed by
a ``keel worker`` process, which exports its spans over OTLP/HTTP to a receiver started
here (a stdlib HTTP server that keeps what is POSTed to ``/v1/traces``, decoded with
``opentelemetry-proto``). The worker configures the SDK itself, from
``OTEL_EXPORTER_OTLP_ENDPOINT``, as an operator would run it. Waits poll with a
generous deadline; nothing asserts on durations."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from keel.engine.events import RunStarted
from keel.server import create_app
from keel.server.identities import create_token
from keel.store.sqlite import SQLiteStore
from tests.processes import until
from tests.server.traceflows import NODES, deploy_traced

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0

pytestmark = pytest.mark.slow


class Received:
    """What the receiver was sent: each span with its resource's attributes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[tuple[dict[str, Any], Span]] = []

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    self.spans += [(resource, span) for span in scope_spans.spans]

    def of_trace(self, trace_id: str) -> list[tuple[dict[str, Any], Span]]:
        with self.lock:
            return [(r, s) for r, s in self.spans if s.trace_id.hex() == trace_id]


def value(item: AnyValue) -> Any:
    return getattr(item, item.WhichOneof("value") or "string_value")


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: value(pair.value) for pair in pairs}


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            received.add(ExportTraceServiceRequest.FromString(body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_worker_process_exports_the_spans_of_a_run_started_with_a_traceparent(
    tmp_path: Path, receiver: tuple[str, Received]
) -> None:
    endpoint, received = receiver
    db = tmp_path / "keel.db"
    store = SQLiteStore(db)
    deploy_traced(store)
    token, _ = create_token(store, "starter", "operator")
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with TestClient(create_app(store, rate=0)) as client:
        response = client.post(
            "/runs", json={"workflow": "traced", "input": {"n": 1}},
            headers={"Authorization": f"Bearer {token}",
                     "traceparent": f"00-{trace_id}-{caller_span}-01"},
        )  # fmt: skip
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    first = store.history(run_id)[0].event
    assert isinstance(first, RunStarted)
    assert first.trace is not None
    assert first.trace["trace_id"] == trace_id
    assert first.trace["parent_id"] == caller_span

    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": f"sqlite:///{db}",
           "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}  # fmt: skip
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED"):
        env.pop(name, None)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "keel", "worker", "tests.server.traceflows"],
            env=env, cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        until("the run ends", lambda: store.get_run(run_id).status in ("succeeded", "failed"))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=DEADLINE)
    told = (tmp_path / "worker.log").read_text()
    assert store.get_run(run_id).status == "succeeded", told
    assert f"traces: sent over OTLP/HTTP to {endpoint}/v1/traces, as service keel-worker" in told

    ours = received.of_trace(trace_id)
    assert {resource["service.name"] for resource, _ in ours} == {"keel-worker"}
    spans = [span for _, span in ours]
    (run_span,) = [s for s in spans if s.name == "run traced"]
    assert run_span.span_id.hex() == first.trace["span_id"]
    assert run_span.parent_span_id.hex() == caller_span
    tried = [s for s in spans if s is not run_span]
    assert sorted(attributes(s.attributes)["keel.node"] for s in tried) == sorted(
        [*NODES, "flaky"]
    )  # the retried node's two attempts
    for span in tried:
        assert span.parent_span_id.hex() == first.trace["span_id"]
        assert attributes(span.attributes)["keel.run_id"] == run_id
    failed = [s for s in tried if s.status.code == Status.STATUS_CODE_ERROR]
    assert [(attributes(s.attributes)["keel.node"], attributes(s.attributes)["keel.attempt"])
            for s in failed] == [("flaky", 1)]  # fmt: skip

    # the task in a child process saw the worker's span of its attempt
    (apart,) = [s for s in tried if attributes(s.attributes)["keel.node"] == "apart"]
    output = store.get_run(run_id).output
    expected = f"00-{trace_id}-{apart.span_id.hex()}-01"
    assert output == {"result": {"current": expected, "ctx": expected}}
    store.close()

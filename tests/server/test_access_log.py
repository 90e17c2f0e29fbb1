"""``keel serve``'s access log: one line per request at INFO on ``keel.server.access``,
with the method, the path without its query, the status, the milliseconds taken, the
token's name (refused or not), the client's address and a webhook's delivery id; never
a header or a body; JSON with its fields under ``--log-format json``, with the trace id
of a request that sent a ``traceparent``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from keel.runtime.log_lines import JsonFormatter, formatter
from tests.server.conftest import Api

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Lines(logging.Handler):
    """The access log's records, each formatted as JSON when logged (where the request's
    trace is current) and kept as text too."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.json: list[dict[str, object]] = []
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.json.append(json.loads(JsonFormatter().format(record)))
        self.text.append(formatter("text").format(record))


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger("keel.server.access")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_request_is_one_line_with_its_method_path_status_time_token_and_client(
    api: Api, lines: Lines
) -> None:
    token = api.tokens["viewer"]
    answer = api.client.get(f"/runs/{api.waiting}/logs", params={"limit": 5, "secret": "s3"},
                            headers={**api.auth("viewer"), "X-Private": "p4"})  # fmt: skip
    assert answer.status_code == 200

    (line,) = lines.json
    assert {k: v for k, v in line.items() if k not in ("time", "duration_ms")} == {
        "level": "INFO", "logger": "keel.server.access", "method": "GET",
        "path": f"/runs/{api.waiting}/logs", "status": 200, "token": "viewer-1",
        "client": "testclient",
        "message": f"GET /runs/{api.waiting}/logs 200 {line['duration_ms']} ms by viewer-1 "
                   "from testclient",
    }  # fmt: skip
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    said = lines.text[0] + json.dumps(line)
    for secret in (token, "s3", "p4", "Bearer"):  # no query, no header
        assert secret not in said


def test_refused_requests_are_logged_with_their_status(api: Api, lines: Lines) -> None:
    api.client.get("/runs")  # no token
    api.client.post(f"/runs/{api.waiting}/cancel", json={}, headers=api.auth("viewer"))
    api.client.get("/runs/nope", headers=api.auth("viewer"))

    assert [(r.status, r.token) for r in lines.records] == [  # type: ignore[attr-defined]
        (401, None), (403, "viewer-1"), (404, "viewer-1")]  # fmt: skip
    assert "by" not in lines.text[0].split(": ", 1)[1].split()


def test_a_webhook_delivery_is_logged_with_its_id(api: Api, lines: Lines) -> None:
    signed = {"X-Keel-Delivery": "d-42", "X-Keel-Signature": "t=1,v1=ab"}
    api.client.post("/hooks/nowhere", content=b'{"secret": "body"}', headers=signed)

    (line,) = lines.json
    assert (line["path"], line["status"], line["delivery"]) == ("/hooks/nowhere", 404, "d-42")
    assert "token" not in line
    assert "body" not in json.dumps(line)
    assert "v1=ab" not in json.dumps(line)


def test_the_path_is_logged_as_sent_so_it_cannot_break_the_line(api: Api, lines: Lines) -> None:
    api.client.get("/runs/a%0Ab", headers=api.auth("viewer"))

    assert lines.json[0]["path"] == "/runs/a%0Ab"
    assert "\n" not in lines.text[0]


def test_a_request_with_a_traceparent_logs_its_trace_id(api: Api, lines: Lines) -> None:
    api.client.get("/health", headers={"traceparent": TRACEPARENT})

    assert lines.json[0]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def test_nothing_is_logged_when_the_access_log_is_not_at_info(api: Api) -> None:
    logger = logging.getLogger("keel.server.access")
    handler = Lines()
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        api.client.get("/health")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert handler.records == []

"""``GET /audit/export``: the export streamed to an auditor's token, as ``keel audit
export`` writes it (it verifies offline), or as CSV; the selection checked before the
first byte (404 for a run that is not there, 422 for a bad key or time)."""

from __future__ import annotations

import csv
import io
import json

from keel.audit.signing import SigningKey
from tests.audit.exports import lines_of, verified
from tests.server.conftest import Api


def test_an_auditor_streams_an_export_that_verifies(api: Api) -> None:
    key = SigningKey.generate().public_key
    response = api.client.get("/audit/export", params={"key": key.to_text()},
                              headers=api.auth("auditor"))  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    assert "attachment" in response.headers["content-disposition"]
    report = verified(response.content)
    assert report is not None
    assert report.intact, report.problems
    assert report.counts["runs"] == 3
    lines = [json.loads(line) for line in lines_of(response.content)]
    assert lines[1] == {"type": "key", "key_id": key.key_id, "key": key.to_text()}
    decided = [line for line in lines
               if line["type"] == "event" and line["kind"] == "approval_decided"]  # fmt: skip
    assert [(d["run_id"], d["node"], d["who"]) for d in decided] == [(api.failed, "check", "setup")]


def test_the_selection_and_csv(api: Api) -> None:
    auditor = api.auth("auditor")
    one = api.client.get(f"/audit/export?run={api.paused[:8]}&run={api.failed}",
                         headers=auditor)  # fmt: skip
    runs = [json.loads(line)["run_id"] for line in lines_of(one.content)
            if line.startswith(b'{"type":"run"')]  # fmt: skip
    assert runs == [api.paused, api.failed]
    later = api.client.get("/audit/export?since=2999-01-01T00:00:00Z", headers=auditor)
    assert later.content.count(b'{"type":"run"') == 0
    table = api.client.get(f"/audit/export?run={api.waiting}&format=csv", headers=auditor)
    assert table.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert {row["run_id"] for row in rows} == {api.waiting}
    assert len(rows) == api.store.get_run(api.waiting).last_seq


def test_a_bad_selection_is_refused_before_the_export_starts(api: Api) -> None:
    auditor = api.auth("auditor")
    missing = api.client.get("/audit/export?run=nothing", headers=auditor)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    bad_key = api.client.get("/audit/export?key=ed25519:AAAA", headers=auditor)
    assert bad_key.status_code == 422
    assert "32 bytes" in bad_key.json()["detail"]
    bad_time = api.client.get("/audit/export?since=yesterday", headers=auditor)
    assert bad_time.status_code == 422


def test_an_auditor_acts_on_nothing(api: Api) -> None:
    refused = api.client.post(f"/runs/{api.waiting}/cancel", json={},
                              headers=api.auth("auditor"))  # fmt: skip
    assert refused.status_code == 403
    assert api.client.get("/audit/export", headers=api.auth("viewer")).status_code == 403
    assert api.client.get(f"/runs/{api.waiting}", headers=api.auth("auditor")).status_code == 200
